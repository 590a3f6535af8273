from django.urls import path

from transactional import apis

urlpatterns = [
    path("transactional", apis.TransactionalSendApi.as_view(), name="transactional-send"),
    path("transactional/messages", apis.MessageListApi.as_view(), name="transactional-message-list"),
    path(
        "transactional/messages/<uuid:message_id>",
        apis.MessageDetailApi.as_view(),
        name="transactional-message-detail",
    ),
    path(
        "transactional/messages/<uuid:message_id>/cancel",
        apis.MessageCancelApi.as_view(),
        name="transactional-message-cancel",
    ),
    path(
        "transactional/batches/<uuid:batch_id>/cancel",
        apis.BatchCancelApi.as_view(),
        name="transactional-batch-cancel",
    ),
]
