#!/usr/bin/env node
// OpenID Connect test identity provider for the pytest suite.
//
// A real OIDC provider (the `oidc-provider` package) dressed up as Keycloak or
// Auth0, plus a few /__test/ control endpoints. Listens on 127.0.0.1 only.
// See README.md in this folder for usage.
//
//   node tests/idp/server.mjs --port 0 --mode keycloak --realm acme
//   node tests/idp/server.mjs --port 0 --mode auth0 --namespace https://ameide.example/
//
// Once listening, exactly one JSON line is written to stdout (issuer, port, ...).
// Everything else (diagnostics) goes to stderr.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

// oidc-provider prints "NOTICE" lines with console.info (stdout); stdout is
// reserved for the single ready line, so route console.log/info to stderr and
// drop the known noise unless --verbose.
const VERBOSE = process.argv.includes('--verbose');
{
  const toStderr = (...args) => {
    const text = args.map(String).join(' ');
    if (!VERBOSE && /oidc-provider NOTICE|Unsupported runtime/.test(text)) return;
    process.stderr.write(`${text}\n`);
  };
  console.log = toStderr;
  console.info = toStderr;
  console.warn = toStderr;
}

const { default: Provider, errors } = await import('oidc-provider');

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

function die(message) {
  process.stderr.write(`test-idp: ${message}\n`);
  process.exit(2);
}

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      mode: { type: 'string', default: 'keycloak' },
      realm: { type: 'string', default: 'ameide' },
      namespace: { type: 'string', default: 'https://ameide.example/' },
      audience: { type: 'string', default: 'ameide-api' },
      'client-id': { type: 'string', default: 'ameide' },
      'client-secret': { type: 'string', default: 'ameide-secret' },
      'redirect-uri': { type: 'string', multiple: true, default: [] },
      'post-logout-redirect-uri': { type: 'string', multiple: true, default: [] },
      'strict-redirects': { type: 'boolean', default: false },
      users: { type: 'string' },
      'token-ttl': { type: 'string', default: '3600' },
      'watch-stdin': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  die(err.message);
}

const MODE = opts.mode;
if (MODE !== 'keycloak' && MODE !== 'auth0') die(`--mode must be keycloak or auth0, got ${MODE}`);
const PORT = Number(opts.port);
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) die(`invalid --port ${opts.port}`);
const TOKEN_TTL = Number(opts['token-ttl']);
if (!Number.isInteger(TOKEN_TTL) || TOKEN_TTL <= 0) die(`invalid --token-ttl ${opts['token-ttl']}`);
if (MODE === 'keycloak' && !/^[A-Za-z0-9._-]+$/.test(opts.realm)) die(`invalid --realm ${opts.realm}`);

const CLIENT_ID = opts['client-id'];
const CLIENT_SECRET = opts['client-secret'];
const AUDIENCE = opts.audience;
const NAMESPACE = opts.namespace;
const CUSTOM_GRANT = 'urn:ameide:test:user';

// Claim names per flavour.
const TENANT_CLAIM = MODE === 'keycloak' ? 'tenant_id' : `${NAMESPACE}tenant_id`;
const ROLES_CLAIM = MODE === 'keycloak' ? 'realm_access' : `${NAMESPACE}roles`;

// Paths (relative to the issuer's mount path) per flavour.
const ROUTES = MODE === 'keycloak'
  ? {
    authorization: '/protocol/openid-connect/auth',
    token: '/protocol/openid-connect/token',
    jwks: '/protocol/openid-connect/certs',
    userinfo: '/protocol/openid-connect/userinfo',
    end_session: '/protocol/openid-connect/logout',
    pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
  }
  : {
    authorization: '/authorize',
    token: '/oauth/token',
    jwks: '/.well-known/jwks.json',
    userinfo: '/userinfo',
    end_session: '/v2/logout',
    pushed_authorization_request: '/oauth/par',
  };

const MOUNT = MODE === 'keycloak' ? `/realms/${opts.realm}` : '';
const DISCOVERY_PATH = `${MOUNT}/.well-known/openid-configuration`;
const P = Object.fromEntries(Object.entries(ROUTES).map(([k, v]) => [k, MOUNT + v]));
const INTERACTION_PREFIX = `${MOUNT}/interaction/`;

// ---------------------------------------------------------------------------
// Mutable test state
// ---------------------------------------------------------------------------

const users = new Map(); // sub -> user object (stored as given)
const redirectUris = new Set(opts['redirect-uri']);
const postLogoutRedirectUris = new Set(opts['post-logout-redirect-uri']);
let signingKeys = []; // private JWKs, current signing key first
let jwksDown = false;
const STAT_KEYS = ['discovery', 'jwks', 'userinfo', 'token', 'authorize', 'logout', 'interaction', 'other', 'total'];
let stats = Object.fromEntries(STAT_KEYS.map((k) => [k, 0]));
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

function addUser(user) {
  if (user === null || typeof user !== 'object' || Array.isArray(user)) {
    throw new TypeError('user must be a JSON object');
  }
  if (typeof user.sub !== 'string' || !user.sub) {
    throw new TypeError('user.sub must be a non-empty string');
  }
  users.set(user.sub, structuredClone(user));
}

function loadUsers(value) {
  const list = Array.isArray(value) ? value : value?.users;
  if (!Array.isArray(list)) throw new TypeError('users must be a JSON array or {"users": [...]}');
  list.forEach(addUser);
  return list.length;
}

if (opts.users) {
  try {
    loadUsers(JSON.parse(fs.readFileSync(opts.users, 'utf8')));
  } catch (err) {
    die(`cannot load --users ${opts.users}: ${err.message}`);
  }
}

// Claims for a user, emitted identically in ID tokens, access tokens and userinfo.
function userClaims(user) {
  const claims = {};
  if (Object.hasOwn(user, 'email')) {
    claims.email = user.email;
    claims.email_verified = Object.hasOwn(user, 'email_verified') ? user.email_verified : true;
  }
  if (Object.hasOwn(user, 'name')) claims.name = user.name;
  claims.preferred_username = user.preferred_username ?? user.username ?? user.sub;
  if (Object.hasOwn(user, 'tenant')) claims[TENANT_CLAIM] = user.tenant;
  if (Object.hasOwn(user, 'roles')) {
    claims[ROLES_CLAIM] = MODE === 'keycloak' ? { roles: user.roles } : user.roles;
  }
  return claims;
}
const USER_CLAIM_NAMES = ['email', 'email_verified', 'name', 'preferred_username', TENANT_CLAIM, ROLES_CLAIM];

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

async function generateSigningKey() {
  const { privateKey } = await new Promise((resolve, reject) => {
    crypto.generateKeyPair('rsa', { modulusLength: 2048 }, (err, publicKey, key) => (
      err ? reject(err) : resolve({ publicKey, privateKey: key })));
  });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: crypto.randomBytes(16).toString('base64url'),
    alg: 'RS256',
    use: 'sig',
  };
}

function publicKeyFor(kid) {
  const jwk = signingKeys.find((k) => k.kid === kid);
  if (!jwk) return undefined;
  const { kty, n, e } = jwk;
  return crypto.createPublicKey({ key: { kty, n, e }, format: 'jwk' });
}

// Minimal RS256 JWT verification used by our own userinfo endpoint.
function verifyJwt(token) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not a JWT');
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
  if (header.alg !== 'RS256') throw new Error('unexpected alg');
  const key = publicKeyFor(header.kid);
  if (!key) throw new Error('unknown kid');
  const ok = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), key, Buffer.from(parts[2], 'base64url'));
  if (!ok) throw new Error('bad signature');
  const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  const now = Math.floor(Date.now() / 1000);
  if (payload.iss !== ISSUER) throw new Error('wrong issuer');
  if (typeof payload.exp !== 'number' || payload.exp <= now) throw new Error('expired');
  return payload;
}

// ---------------------------------------------------------------------------
// Resource indicators: the audience "ameide-api" is not an absolute URI, which
// RFC 8707 resource indicators must be, so non-URI audiences travel as
// urn:ameide:audience:<audience> and are mapped back to the plain audience in
// the token's "aud".
// ---------------------------------------------------------------------------

const AUD_URN = 'urn:ameide:audience:';
const indicatorFor = (aud) => (URL.canParse(aud) ? aud : AUD_URN + encodeURIComponent(aud));
const audienceFor = (indicator) => (
  indicator.startsWith(AUD_URN) ? decodeURIComponent(indicator.slice(AUD_URN.length)) : indicator);
const DEFAULT_RESOURCE = indicatorFor(AUDIENCE);
const RS_SCOPE = 'openid profile email roles offline_access';

// ---------------------------------------------------------------------------
// Storage shared by every Provider instance (the provider is re-created on key
// rotation; oidc-provider's built-in memory adapter is per instance, which
// would drop sessions, interactions, codes and refresh tokens on rotation).
// ---------------------------------------------------------------------------

const storage = new Map(); // key -> { value, exp (ms epoch) | undefined }
const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);
let writesSinceSweep = 0;

function storeGet(key) {
  const entry = storage.get(key);
  if (!entry) return undefined;
  if (entry.exp !== undefined && entry.exp <= Date.now()) {
    storage.delete(key);
    return undefined;
  }
  return entry.value;
}

function storeSet(key, value, expiresIn) {
  storage.set(key, { value, exp: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined });
  if (++writesSinceSweep >= 1000) {
    writesSinceSweep = 0;
    const now = Date.now();
    for (const [k, e] of storage) if (e.exp !== undefined && e.exp <= now) storage.delete(k);
  }
}

class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    if (this.model === 'Session') storeSet(`sessionUid:${payload.uid}`, id, expiresIn);
    if (payload.userCode) storeSet(`userCode:${payload.userCode}`, id, expiresIn);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      const members = storeGet(grantKey) ?? new Set();
      members.add(key);
      storeSet(grantKey, members);
    }
    storeSet(key, payload, expiresIn);
  }

  async find(id) {
    return storeGet(this.key(id));
  }

  async findByUid(uid) {
    const id = storeGet(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = storeGet(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    storage.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    for (const key of storeGet(grantKey) ?? []) storage.delete(key);
    storage.delete(grantKey);
  }
}

// ---------------------------------------------------------------------------
// Provider
// ---------------------------------------------------------------------------

let ISSUER;
let provider;
let providerCallback;

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function isLoopbackHttp(uri) {
  const url = URL.parse(uri);
  return !!url && url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

function page(title, body) {
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>\n<body>\n${body}\n</body></html>\n`;
}

function buildProvider() {
  const clientRedirects = redirectUris.size ? [...redirectUris] : ['http://127.0.0.1/callback'];
  const configuration = {
    adapter: SharedMemoryAdapter,
    jwks: { keys: signingKeys },
    cookies: { keys: cookieKeys },
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: clientRedirects,
      post_logout_redirect_uris: [...postLogoutRedirectUris],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials', CUSTOM_GRANT],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted too
      id_token_signed_response_alg: 'RS256',
    }],
    routes: ROUTES,
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', 'profile', 'email', 'roles'],
    claims: {
      openid: ['sub', ...USER_CLAIM_NAMES],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      roles: [ROLES_CLAIM],
    },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    clientBasedCORS: () => true,
    findAccount: async (ctx, sub) => {
      const user = users.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        claims: async () => ({ sub, ...userClaims(user) }),
      };
    },
    extraTokenClaims: async (ctx, token) => {
      const extra = { azp: token.clientId };
      if (MODE === 'keycloak') extra.typ = 'Bearer';
      const user = token.accountId ? users.get(token.accountId) : undefined;
      return user ? { ...extra, ...userClaims(user) } : extra;
    },
    issueRefreshToken: async (ctx, client, code) => (
      client.grantTypeAllowed('refresh_token')
      && (MODE === 'keycloak' || code.scopes.has('offline_access'))),
    interactions: {
      url: async (ctx, interaction) => `${MOUNT}/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => {
          if (oneOf) return oneOf.includes(DEFAULT_RESOURCE) ? DEFAULT_RESOURCE : oneOf[0];
          return DEFAULT_RESOURCE;
        },
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, indicator) => ({
          scope: RS_SCOPE,
          audience: audienceFor(indicator),
          accessTokenTTL: TOKEN_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          // Put the confirm button inside the form so that plain HTTP clients can submit it.
          const inner = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/><button type="submit">Sign out</button></form>');
          ctx.body = page('Sign out', `<h1>Sign out</h1>\n${inner}\n<script>document.forms[0].submit()</script>`);
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.body = page('Signed out', '<h1>Signed out</h1>');
        },
      },
    },
    ttl: {
      AccessToken: TOKEN_TTL,
      ClientCredentials: TOKEN_TTL,
      AuthorizationCode: 120,
      IdToken: TOKEN_TTL,
      RefreshToken: 86400,
      Interaction: 3600,
      Session: 86400,
      Grant: 86400,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<h1>Error</h1>\n<pre id="error">${esc(out.error)}: ${esc(out.error_description ?? '')}</pre>`);
    },
  };

  const p = new Provider(ISSUER, configuration);

  // Any http loopback redirect is allowed (unless --strict-redirects), plus registered ones.
  const allowed = (set) => (uri) => set.has(uri) || (!opts['strict-redirects'] && isLoopbackHttp(uri));
  p.Client.prototype.redirectUriAllowed = function redirectUriAllowed(uri) {
    return this.redirectUris.includes(uri) || allowed(redirectUris)(uri);
  };
  p.Client.prototype.postLogoutRedirectUriAllowed = function postLogoutRedirectUriAllowed(uri) {
    return this.postLogoutRedirectUris.includes(uri)
      || allowed(postLogoutRedirectUris)(uri) || allowed(redirectUris)(uri);
  };

  p.registerGrantType(CUSTOM_GRANT, customGrantHandler(p), ['sub', 'scope', 'resource', 'audience', 'ttl']);

  p.on('server_error', (ctx, err) => process.stderr.write(`test-idp: server_error ${ctx.method} ${ctx.path}: ${err.stack}\n`));
  if (VERBOSE) {
    for (const ev of ['grant.error', 'authorization.error', 'end_session.error', 'userinfo.error']) {
      p.on(ev, (ctx, err) => process.stderr.write(`test-idp: ${ev} ${err.message} ${err.error_description ?? ''}\n`));
    }
  }

  provider = p;
  providerCallback = p.callback();
}

// Custom grant: mint tokens for any configured user without a browser.
//   POST <token endpoint>  grant_type=urn:ameide:test:user&sub=<sub>
//   [&scope=...][&resource=<uri>|&audience=<aud>][&ttl=<seconds>]
//   client authentication: HTTP Basic or client_id/client_secret in the body.
function customGrantHandler(p) {
  return async function testUserGrant(ctx) {
    const { params, client } = ctx.oidc;
    if (!params.sub) throw new errors.InvalidRequest("missing required parameter 'sub'");
    if (!users.has(params.sub)) {
      throw Object.assign(new errors.InvalidGrant(), { error_description: `unknown user ${params.sub}` });
    }

    let expiresIn = TOKEN_TTL;
    if (params.ttl !== undefined) {
      expiresIn = Number(params.ttl);
      if (!Number.isInteger(expiresIn) || expiresIn <= 0) throw new errors.InvalidRequest('ttl must be a positive integer');
    }

    let indicator = DEFAULT_RESOURCE;
    if (params.resource) {
      if (Array.isArray(params.resource)) throw new errors.InvalidTarget('only one resource is supported');
      if (!URL.canParse(params.resource)) throw new errors.InvalidTarget('resource indicator must be an absolute URI');
      indicator = params.resource;
    } else if (params.audience) {
      indicator = indicatorFor(params.audience);
    }

    const scope = params.scope ?? 'openid profile email';
    const scopes = scope.split(' ').filter(Boolean);

    const at = new p.AccessToken({
      accountId: params.sub,
      client,
      gty: CUSTOM_GRANT,
      scope: scopes.join(' ') || undefined,
      expiresIn,
    });
    at.resourceServer = new p.ResourceServer(indicator, {
      scope: scopes.join(' '),
      audience: audienceFor(indicator),
      accessTokenTTL: expiresIn,
      accessTokenFormat: 'jwt',
      jwt: { sign: { alg: 'RS256' } },
    });
    ctx.oidc.entity('AccessToken', at);
    const accessToken = await at.save();

    const body = {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: expiresIn,
      scope: scopes.join(' '),
    };

    if (scopes.includes('openid')) {
      const user = users.get(params.sub);
      const idToken = new p.IdToken({ sub: params.sub, ...userClaims(user) }, { ctx });
      idToken.scope = scopes.join(' ');
      body.id_token = await idToken.issue({ use: 'idtoken', expiresAt: Math.floor(Date.now() / 1000) + expiresIn });
    }

    ctx.body = body;
  };
}

// ---------------------------------------------------------------------------
// Interactions (login form + automatic consent)
// ---------------------------------------------------------------------------

function loginPage(uid, { error, login } = {}) {
  return page('Sign in', [
    '<h1>Sign in</h1>',
    error ? `<p id="error" class="error">${esc(error)}</p>` : '',
    `<form id="login-form" method="post" action="${esc(INTERACTION_PREFIX + uid)}">`,
    `<label>Username <input type="text" id="login" name="login" value="${esc(login ?? '')}" autofocus></label>`,
    '<label>Password <input type="password" id="password" name="password"></label>',
    '<button type="submit" id="submit">Sign in</button>',
    '</form>',
  ].filter(Boolean).join('\n'));
}

async function autoConsent(req, res, details) {
  const { prompt: { details: missing }, params, session } = details;
  let grant;
  if (details.grantId) {
    grant = await provider.Grant.find(details.grantId);
  }
  grant ??= new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function handleInteraction(req, res, uid) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    const text = err.error_description ? `${err.message}: ${err.error_description}` : err.message;
    return send(res, 400, page('Error', `<h1>Error</h1>\n<pre id="error">${esc(text)}</pre>`), 'text/html; charset=utf-8');
  }
  if (details.uid !== uid) {
    return send(res, 400, page('Error', '<h1>Error</h1>\n<pre id="error">interaction mismatch</pre>'), 'text/html; charset=utf-8');
  }
  const promptName = details.prompt.name;

  if (req.method === 'GET') {
    if (promptName === 'login') return send(res, 200, loginPage(uid), 'text/html; charset=utf-8');
    if (promptName === 'consent') return autoConsent(req, res, details);
    return send(res, 400, `unsupported prompt ${promptName}`);
  }

  if (req.method === 'POST') {
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    if (promptName === 'consent') return autoConsent(req, res, details);
    const login = form.get('login') ?? '';
    if (!users.has(login)) {
      return send(res, 200, loginPage(uid, { error: 'Invalid username or password.', login }), 'text/html; charset=utf-8');
    }
    return provider.interactionFinished(req, res, {
      login: { accountId: login, remember: true },
    }, { mergeWithLastSubmission: false });
  }
  return send(res, 405, 'method not allowed');
}

// ---------------------------------------------------------------------------
// Userinfo for JWT access tokens (oidc-provider only serves userinfo for opaque
// tokens; Keycloak and Auth0 accept their JWT access tokens there).
// ---------------------------------------------------------------------------

async function handleUserinfo(req, res, token) {
  let payload;
  try {
    payload = verifyJwt(token);
  } catch (err) {
    res.setHeader('WWW-Authenticate', `Bearer error="invalid_token", error_description="${err.message}"`);
    return sendJson(res, 401, { error: 'invalid_token', error_description: err.message });
  }
  const user = users.get(payload.sub);
  if (!user) {
    res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token", error_description="user not found"');
    return sendJson(res, 401, { error: 'invalid_token', error_description: 'user not found' });
  }
  res.setHeader('Access-Control-Allow-Origin', req.headers.origin ?? '*');
  return sendJson(res, 200, { sub: payload.sub, ...userClaims(user) });
}

// ---------------------------------------------------------------------------
// /__test/ control endpoints
// ---------------------------------------------------------------------------

async function handleTest(req, res, path) {
  const route = `${req.method} ${path}`;
  let body = {};
  if (req.method === 'POST') {
    const raw = (await readBody(req)).toString('utf8').trim();
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        return sendJson(res, 400, { error: 'invalid JSON body' });
      }
    }
  }
  try {
    switch (route) {
      case 'GET /__test/config':
        return sendJson(res, 200, readyInfo());
      case 'POST /__test/users': {
        const list = Array.isArray(body) ? body : [body];
        list.forEach(addUser);
        return sendJson(res, 200, { ok: true, users: [...users.keys()] });
      }
      case 'GET /__test/users':
        return sendJson(res, 200, { users: [...users.values()] });
      case 'POST /__test/rotate': {
        const keepOld = body?.keep_old ?? true;
        const key = await generateSigningKey();
        signingKeys = keepOld ? [key, ...signingKeys] : [key];
        buildProvider();
        return sendJson(res, 200, { kid: key.kid, kids: signingKeys.map((k) => k.kid) });
      }
      case 'POST /__test/jwks_down':
        jwksDown = body?.down ?? true;
        jwksDown = !!jwksDown;
        return sendJson(res, 200, { down: jwksDown });
      case 'GET /__test/stats':
        return sendJson(res, 200, stats);
      case 'POST /__test/stats/reset':
        stats = Object.fromEntries(STAT_KEYS.map((k) => [k, 0]));
        return sendJson(res, 200, stats);
      case 'POST /__test/redirect_uris': {
        const list = [body?.uri, ...(Array.isArray(body?.uris) ? body.uris : [])].filter((u) => u !== undefined);
        if (!list.length || !list.every((u) => typeof u === 'string' && URL.canParse(u))) {
          return sendJson(res, 400, { error: 'body must be {"uri": "<absolute uri>"}' });
        }
        for (const uri of list) {
          redirectUris.add(uri);
          postLogoutRedirectUris.add(uri);
        }
        return sendJson(res, 200, { redirect_uris: [...redirectUris] });
      }
      default:
        if (req.method === 'DELETE' && path.startsWith('/__test/users/')) {
          const removed = users.delete(decodeURIComponent(path.slice('/__test/users/'.length)));
          return sendJson(res, removed ? 200 : 404, { removed });
        }
        return sendJson(res, 404, { error: `unknown test endpoint ${route}` });
    }
  } catch (err) {
    return sendJson(res, 400, { error: err.message });
  }
}

// ---------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------

function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res, status, body, type = 'text/plain; charset=utf-8') {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

function sendJson(res, status, obj) {
  send(res, status, JSON.stringify(obj), 'application/json; charset=utf-8');
}

function category(path) {
  if (path === DISCOVERY_PATH || path.endsWith('/.well-known/openid-configuration')) return 'discovery';
  if (path === P.jwks) return 'jwks';
  if (path === P.userinfo) return 'userinfo';
  if (path === P.token) return 'token';
  if (path === P.authorization || path.startsWith(`${P.authorization}/`)) return 'authorize';
  if (path === P.end_session || path.startsWith(`${P.end_session}/`)) return 'logout';
  if (path.startsWith(INTERACTION_PREFIX)) return 'interaction';
  return 'other';
}

function bearerToken(req) {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m?.[1];
}

async function handle(req, res) {
  const url = new URL(req.url, ISSUER);
  const path = url.pathname;

  if (path.startsWith('/__test/')) return handleTest(req, res, path);

  const cat = category(path);
  stats[cat] += 1;
  stats.total += 1;

  if (jwksDown && (cat === 'jwks' || cat === 'discovery')) {
    res.setHeader('Retry-After', '1');
    return sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'JWKS/discovery down (test switch)' });
  }

  if (cat === 'userinfo' && req.method !== 'OPTIONS') {
    const token = bearerToken(req);
    if (token && token.split('.').length === 3) return handleUserinfo(req, res, token);
  }

  if (path.startsWith(INTERACTION_PREFIX)) {
    const uid = path.slice(INTERACTION_PREFIX.length);
    if (/^[A-Za-z0-9_-]+$/.test(uid)) return handleInteraction(req, res, uid);
  }

  // Auth0 dialect: ?audience= on /authorize, ?returnTo= on /v2/logout.
  if (MODE === 'auth0') {
    let changed = false;
    if (cat === 'authorize' && url.searchParams.has('audience') && !url.searchParams.has('resource')) {
      url.searchParams.set('resource', indicatorFor(url.searchParams.get('audience')));
      url.searchParams.delete('audience');
      changed = true;
    }
    // oidc-provider drops offline_access unless prompt includes consent; Auth0 does
    // not need that, and consent is automatic here anyway.
    if (cat === 'authorize' && !url.searchParams.has('prompt')
      && (url.searchParams.get('scope') ?? '').split(' ').includes('offline_access')) {
      url.searchParams.set('prompt', 'consent');
      changed = true;
    }
    if (path === P.end_session && url.searchParams.has('returnTo')) {
      if (!url.searchParams.has('post_logout_redirect_uri')) {
        url.searchParams.set('post_logout_redirect_uri', url.searchParams.get('returnTo'));
      }
      url.searchParams.delete('returnTo');
      changed = true;
    }
    if (changed) req.url = url.pathname + url.search;
  }

  if (MOUNT) {
    if (path !== MOUNT && !path.startsWith(`${MOUNT}/`)) return sendJson(res, 404, { error: 'not found' });
    // Mount like Express does: originalUrl keeps the prefix, url drops it.
    req.originalUrl = req.url;
    req.url = req.url.slice(MOUNT.length) || '/';
  }
  return providerCallback(req, res);
}

function readyInfo() {
  return {
    issuer: ISSUER,
    port: server.address().port,
    mode: MODE,
    discovery_url: new URL(DISCOVERY_PATH, ISSUER).href,
    jwks_uri: new URL(P.jwks, ISSUER).href,
    token_endpoint: new URL(P.token, ISSUER).href,
    authorization_endpoint: new URL(P.authorization, ISSUER).href,
    userinfo_endpoint: new URL(P.userinfo, ISSUER).href,
    end_session_endpoint: new URL(P.end_session, ISSUER).href,
    client_id: CLIENT_ID,
    audience: AUDIENCE,
    tenant_claim: TENANT_CLAIM,
    roles_claim: ROLES_CLAIM,
    custom_grant: CUSTOM_GRANT,
    pid: process.pid,
  };
}

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    process.stderr.write(`test-idp: unhandled ${req.method} ${req.url}: ${err.stack}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: err.message });
    else res.end();
  });
});
server.keepAliveTimeout = 5000;

const [firstKey] = await Promise.all([
  generateSigningKey(),
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(PORT, '127.0.0.1', resolve);
  }).catch((err) => die(`cannot listen on 127.0.0.1:${PORT}: ${err.message}`)),
]);
signingKeys = [firstKey];
const { port } = server.address();
ISSUER = MODE === 'keycloak' ? `http://127.0.0.1:${port}${MOUNT}` : `http://127.0.0.1:${port}/`;
buildProvider();

process.stdout.write(`${JSON.stringify(readyInfo())}\n`);

function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (opts['watch-stdin']) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
