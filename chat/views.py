from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from chat.forms import AssistantCreateForm, ConversationRenameForm
from chat.frames import message_frame
from chat.selectors import assistants_for_user, conversation_get, conversations_of_user, messages_path
from chat.services import (
    assistant_create,
    assistant_update,
    conversation_create,
    conversation_delete,
    conversation_rename,
)
from common.errors import ApplicationError
from common.forms import form_error_message
from common.redirects import redirect_target
from common.text import control_character_find
from inference.selectors import chat_model_choices
from inference.services import Caller


def _conversation_or_404(request: HttpRequest, conversation_id: int):
    conversation = conversation_get(user=request.user, conversation_id=conversation_id)
    if conversation is None:
        raise Http404("No such conversation.")
    return conversation


@login_required
def assistants_page(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/assistants.html", {"assistants": assistants_for_user(user=request.user)})


def _assistant_form_context(request: HttpRequest, *, values: dict) -> dict:
    """What the assistant form offers: the chat routes and models (those the user may not use shown
    disabled, with why), the collections they may read, and the built-in tools."""
    from chat.tools import tool_choices

    try:
        from knowledge.selectors import collections_readable
        collections = list(collections_readable(user=request.user).values("id", "name")[:200])
    except ImportError:
        collections = []
    return {"form": values, "model_choices": chat_model_choices(caller=Caller(user=request.user)),
            "collections": collections, "tool_choices": tool_choices()}


def _assistant_form_values(request: HttpRequest, assistant=None) -> dict:
    if request.method == "POST":
        post = request.POST
        return {"name": post.get("name", ""), "emoji": post.get("emoji", ""),
                "description": post.get("description", ""), "system_prompt": post.get("system_prompt", ""),
                "route_alias": post.get("route_alias", ""),
                "knowledge_collections": [v for v in post.getlist("knowledge_collections")
                                          if v.isascii() and v.isdigit()],
                "tools": post.getlist("tools")}
    if assistant is None:
        return {"emoji": "💬", "route_alias": "chat-default", "knowledge_collections": [], "tools": []}
    return {"name": assistant.name, "emoji": assistant.emoji, "description": assistant.description,
            "system_prompt": assistant.system_prompt, "route_alias": assistant.route_alias,
            "knowledge_collections": [str(i) for i in assistant.knowledge_collections or []],
            "tools": list(assistant.tools or [])}


def _assistant_form(request: HttpRequest) -> dict:
    form = AssistantCreateForm(request.POST, collection_ids=[
        int(v) for v in request.POST.getlist("knowledge_collections") if v.isascii() and v.isdigit() and len(v) < 19])
    if not form.is_valid():
        raise ApplicationError(form_error_message(form))
    data = form.cleaned_data
    return {"name": data["name"], "system_prompt": data["system_prompt"], "description": data["description"],
            "emoji": data["emoji"] or "💬", "route_alias": data["route_alias"] or "chat-default",
            "knowledge_collections": data["knowledge_collections"], "tools": data["tools"]}


@login_required
def assistant_new(request: HttpRequest) -> HttpResponse:
    error = None
    if request.method == "POST":
        try:
            assistant = assistant_create(owner=request.user, check_route=True, **_assistant_form(request))
        except ApplicationError as exc:
            error = exc.message
        else:
            conversation = conversation_create(user=request.user, assistant=assistant)
            return redirect("conversation", conversation_id=conversation.pk)
    return render(request, "chat/assistant_new.html",
                  {"error": error, **_assistant_form_context(request, values=_assistant_form_values(request))},
                  status=400 if error else 200)


@login_required
def assistant_edit(request: HttpRequest, slug: str) -> HttpResponse:
    """The owner edits their assistant; anyone else's (and staff ones, edited in admin) are 404."""
    assistant = assistants_for_user(user=request.user).filter(slug=slug, owner=request.user).first()
    if assistant is None:
        raise Http404("No such assistant.")
    error = None
    if request.method == "POST":
        try:
            assistant_update(user=request.user, assistant=assistant, **_assistant_form(request))
        except ApplicationError as exc:
            error = exc.message
        else:
            messages.success(request, f"Saved “{assistant.name}”. New conversations use the changes.")
            return redirect("assistants")
    return render(request, "chat/assistant_new.html",
                  {"error": error, "assistant": assistant,
                   **_assistant_form_context(request, values=_assistant_form_values(request, assistant))},
                  status=400 if error else 200)


@login_required
@require_POST
def conversation_start(request: HttpRequest, slug: str) -> HttpResponse:
    assistant = assistants_for_user(user=request.user).filter(slug=slug).first()
    if assistant is None:
        raise Http404("No such assistant.")
    conversation = conversation_create(user=request.user, assistant=assistant)
    return redirect("conversation", conversation_id=conversation.pk)


@login_required
def history_page(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:200]
    if control_character_find(query) is not None:
        query = ""
    return render(request, "chat/history.html", {"conversations": conversations_of_user(user=request.user,
                                                                                          query=query)[:200],
                                                 "query": query})


@login_required
def conversation_page(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    return render(request, "chat/conversation.html", {
        "conversation": conversation,
        "messages_list": [message_frame(m, alternatives) for m, alternatives in
                          messages_path(conversation=conversation)],
        "recent": conversations_of_user(user=request.user)[:100],
        **_knowledge_choices(request, conversation),
        "model_choices": chat_model_choices(caller=Caller(user=request.user)),
        "selected_model": conversation.model or conversation.assistant.route_alias,
    })


def _knowledge_choices(request: HttpRequest, conversation) -> dict:
    """The composer's "Knowledge" picker: off, every readable collection, one of them, or several (ticked in
    a list; an assistant's default list shows the same way)."""
    try:
        from knowledge.selectors import collections_readable, collections_writable
    except ImportError:
        return {"knowledge_available": False}
    collections = list(collections_readable(user=request.user).values("id", "name")[:200])
    writable = list(collections_writable(user=request.user).order_by("name", "id").values("id", "name")[:200])
    chosen = conversation.knowledge_collections
    if not conversation.use_knowledge:
        selected = "off"
    elif chosen is None:
        selected = "all"
    elif len(chosen) == 1:
        selected = str(chosen[0])
    else:
        selected = "kept"
    return {"knowledge_available": bool(collections), "knowledge_collections": collections,
            "knowledge_writable": writable,
            "knowledge_selected": selected, "knowledge_kept": chosen if selected == "kept" else []}


@login_required
@require_POST
def conversation_rename_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    form = ConversationRenameForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError(form_error_message(form))
        conversation_rename(conversation=conversation, title=form.cleaned_data["title"])
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(redirect_target(request, default=reverse("history")))


@login_required
@require_POST
def conversation_delete_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    title = str(conversation)
    conversation_delete(conversation=conversation)
    messages.success(request, f"Deleted “{title}”.")
    return redirect("history")
