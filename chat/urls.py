from __future__ import annotations

from django.urls import path

from chat import apis, views

api_urlpatterns = [
    path("assistants/", apis.AssistantListApi.as_view(), name="api-assistants"),
    path("conversations/", apis.ConversationListCreateApi.as_view(), name="api-conversations"),
    path("conversations/<int:conversation_id>/", apis.ConversationDetailApi.as_view(), name="api-conversation"),
    path("conversations/<int:conversation_id>/messages", apis.ConversationMessageStreamApi.as_view(),
         name="api-conversation-messages"),
]

app_urlpatterns = [
    path("assistants/", views.assistants_page, name="assistants"),
    path("assistants/new/", views.assistant_new, name="assistant_new"),
    path("assistants/<slug:slug>/edit/", views.assistant_edit, name="assistant_edit"),
    path("assistants/<slug:slug>/start/", views.conversation_start, name="conversation_start"),
    path("chats/", views.history_page, name="history"),
    path("chats/<int:conversation_id>/", views.conversation_page, name="conversation"),
    path("chats/<int:conversation_id>/rename/", views.conversation_rename_view, name="conversation_rename"),
    path("chats/<int:conversation_id>/delete/", views.conversation_delete_view, name="conversation_delete"),
]
