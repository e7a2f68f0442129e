from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasScope
from billing.selectors import entitlements_for_user, installment_summary, purchase_current_for_user


class BillingStatusApi(APIView):
    """The caller's plan, purchase state and entitlements."""

    scope = "billing:read"
    permission_classes = [HasScope]

    class BillingStatusOutputSerializer(serializers.Serializer):
        plan = serializers.CharField()
        status = serializers.CharField(allow_null=True)
        grace_ends_at = serializers.DateTimeField(allow_null=True)
        installments_paid = serializers.IntegerField(allow_null=True)
        installments_remaining = serializers.IntegerField(allow_null=True)
        entitlements = serializers.DictField()

    @extend_schema(responses=BillingStatusOutputSerializer, operation_id="billing_status")
    def get(self, request: Request) -> Response:
        entitlements = entitlements_for_user(user=request.user)
        purchase = purchase_current_for_user(user=request.user)
        summary = installment_summary(purchase=purchase) if purchase else None
        data = {
            "plan": entitlements.plan,
            "status": purchase.status if purchase else None,
            "grace_ends_at": purchase.grace_ends_at if purchase else None,
            "installments_paid": summary["paid"] if summary and summary["total"] else None,
            "installments_remaining": summary["remaining"] if summary and summary["total"] else None,
            "entitlements": entitlements.as_dict(),
        }
        return Response(self.BillingStatusOutputSerializer(data).data)
