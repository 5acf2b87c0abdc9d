"""Identity: users, memberships, token verification and sign-in."""
