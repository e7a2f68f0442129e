from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasScope
from accounts.selectors import memberships_of_user


class MeApi(APIView):
    """The signed-in user and the teams they belong to."""

    scope = "account:read"
    permission_classes = [HasScope]

    class TeamOutput(serializers.Serializer):
        class Meta:
            ref_name = "MeTeamOutput"

        id = serializers.IntegerField(source="team.id")
        name = serializers.CharField(source="team.name")
        slug = serializers.CharField(source="team.slug")
        is_personal = serializers.BooleanField(source="team.is_personal")
        role = serializers.CharField()

    class Output(serializers.Serializer):
        class Meta:
            ref_name = "MeOutput"

        id = serializers.IntegerField()
        email = serializers.EmailField()
        name = serializers.CharField()
        teams = serializers.ListField(child=serializers.DictField())

    @extend_schema(responses=Output, operation_id="me_retrieve", summary="The current user and their teams")
    def get(self, request: Request) -> Response:
        teams = self.TeamOutput(memberships_of_user(user=request.user), many=True).data
        user = request.user
        return Response(self.Output({"id": user.id, "email": user.email, "name": user.name, "teams": teams}).data)
