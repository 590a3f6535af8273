from django.urls import path

from delivery import views

app_name = "delivery"

urlpatterns = [
    path("o/<str:token>.gif", views.open_pixel, name="open"),
    path("c/<str:token>", views.click, name="click"),
    path("u/<str:token>", views.unsubscribe, name="unsubscribe"),
]
