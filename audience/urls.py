from rest_framework.routers import SimpleRouter

from audience import apis

router = SimpleRouter(trailing_slash=False)
# contacts/imports before contacts: both prefixes share "contacts/", and a UUID never reads "imports".
router.register("contacts/imports", apis.ContactImportViewSet, basename="contact-import")
router.register("contacts", apis.ContactViewSet, basename="contact")
router.register("labels", apis.LabelViewSet, basename="label")
router.register("segments", apis.SegmentViewSet, basename="segment")
router.register("suppressions", apis.SuppressionViewSet, basename="suppression")

urlpatterns = router.urls
