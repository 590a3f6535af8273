import django_filters

from campaigns.models import Campaign


class CampaignFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Campaign.Status.choices)
    category = django_filters.CharFilter(field_name="category")
    label = django_filters.UUIDFilter(field_name="labels__id", label="Campaigns tagged with this label id.")

    class Meta:
        model = Campaign
        fields = ["status", "category", "label"]
