from rest_framework.routers import SimpleRouter

from accounts.apis import SendingDomainViewSet

router = SimpleRouter(trailing_slash=False)
router.register("sending-domains", SendingDomainViewSet, basename="sending-domain")

urlpatterns = router.urls
