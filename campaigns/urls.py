from rest_framework.routers import SimpleRouter

from campaigns.apis import CampaignViewSet, TemplateViewSet

router = SimpleRouter(trailing_slash=False)
router.register("templates", TemplateViewSet, basename="template")
router.register("campaigns", CampaignViewSet, basename="campaign")

urlpatterns = router.urls
