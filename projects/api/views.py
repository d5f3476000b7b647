from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.openapi import error_responses, uuid_path_parameter
from projects.api.serializers import ProjectCreateInputSerializer, ProjectSerializer
from projects.selectors import project_get_for
from projects.services import project_create


class ProjectListView(APIView):
    @extend_schema(
        operation_id="projects_create",
        summary="Create a project",
        tags=["Projects"],
        request=ProjectCreateInputSerializer,
        responses={201: ProjectSerializer, **error_responses(400, 401, 409, 415)},
    )
    def post(self, request):
        serializer = ProjectCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = project_create(owner=request.user, **serializer.validated_data)
        return Response(
            ProjectSerializer(project).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/projects/{project.id}"},
        )


class ProjectDetailView(APIView):
    @extend_schema(
        operation_id="projects_retrieve",
        summary="Get a project",
        tags=["Projects"],
        parameters=[uuid_path_parameter("id", "Project ID (UUID).")],
        responses={200: ProjectSerializer, **error_responses(401, 404)},
    )
    def get(self, request, id):
        project = project_get_for(user=request.user, project_id=id)
        return Response(ProjectSerializer(project).data)
