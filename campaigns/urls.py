from rest_framework.routers import SimpleRouter

from campaigns.apis import TemplateViewSet

router = SimpleRouter(trailing_slash=False)
router.register("templates", TemplateViewSet, basename="template")

urlpatterns = router.urls
