"""Routes of the workflows API."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from workflows.views import MeView, WorkflowRunViewSet, WorkflowViewSet

router = DefaultRouter()
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("runs", WorkflowRunViewSet, basename="run")

urlpatterns = [path("me/", MeView.as_view(), name="me"), *router.urls]
