"""Who may read, write or manage a collection.

Read: the owner, members of the owning team, users granted read or write directly or
through one of their teams, and every signed-in user for a collection staff made readable by all
(the starter collections). Write (add and delete documents): the owner, members of the owning
team, and write grants. Manage (share, rename, delete the collection): the owner user, or an
owner or admin of the owning team.
"""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet, Sum

from accounts.models import Membership, User
from accounts.selectors import memberships_of_user, teams_of_user
from common.errors import ApplicationError
from knowledge.models import Chunk, Collection, CollectionGrant, Document

ACCESS_READ, ACCESS_WRITE, ACCESS_MANAGE = "read", "write", "manage"
_RANK = {None: 0, ACCESS_READ: 1, ACCESS_WRITE: 2, ACCESS_MANAGE: 3}


def _readable_q(user: User) -> Q:
    teams = teams_of_user(user=user).values("id")
    granted = CollectionGrant.objects.filter(Q(user=user) | Q(team__in=teams)).values("collection_id")
    return Q(owner_user=user) | Q(owner_team__in=teams) | Q(id__in=granted) | Q(readable_by_all=True)


def collections_readable(*, user: User) -> QuerySet[Collection]:
    """Every collection the user may read, as one query (usable as a subquery in retrieval)."""
    if not user.is_authenticated:
        return Collection.objects.none()
    return Collection.objects.filter(_readable_q(user)).order_by("name", "id")


def collections_writable(*, user: User) -> QuerySet[Collection]:
    if not user.is_authenticated:
        return Collection.objects.none()
    teams = teams_of_user(user=user).values("id")
    granted = CollectionGrant.objects.filter(
        Q(user=user) | Q(team__in=teams), permission=CollectionGrant.Permission.WRITE
    ).values("collection_id")
    return Collection.objects.filter(
        Q(owner_user=user) | Q(owner_team__in=teams) | Q(id__in=granted)
    ).order_by("name", "id")


def collection_access(*, user: User, collection: Collection) -> str | None:
    """The strongest of read / write / manage the user has on the collection, or None."""
    if not user.is_authenticated:
        return None
    if collection.owner_user_id == user.pk:
        return ACCESS_MANAGE
    roles = {m.team_id: m.role for m in memberships_of_user(user=user)}
    if collection.owner_team_id in roles:
        manager = roles[collection.owner_team_id] in (Membership.Role.OWNER, Membership.Role.ADMIN)
        return ACCESS_MANAGE if manager else ACCESS_WRITE
    grants = CollectionGrant.objects.filter(collection=collection).filter(
        Q(user=user) | Q(team_id__in=list(roles))
    ).values_list("permission", flat=True)
    best = None
    for permission in grants:
        if _RANK[permission] > _RANK[best]:
            best = permission
    if best is None and collection.readable_by_all:
        return ACCESS_READ
    return best


def collection_get_for(*, user: User, collection_id: int, need: str = ACCESS_READ) -> Collection:
    """The collection if the user has `need` on it. Unreadable ones are 404 so ids don't leak."""
    collection = (
        Collection.objects.filter(pk=collection_id).select_related("owner_user", "owner_team").first()
    )
    access = collection_access(user=user, collection=collection) if collection else None
    if access is None:
        raise ApplicationError("No such collection.", code="not_found", status=404)
    if _RANK[access] < _RANK[need]:
        verb = "add or delete documents in" if need == ACCESS_WRITE else "manage"
        raise ApplicationError(f"You may read this collection but not {verb} it; ask its owner.",
                               code="permission_denied", status=403)
    collection.access = access
    return collection


def document_get_for(*, user: User, document_id: int, need: str = ACCESS_READ) -> Document:
    document = Document.objects.filter(pk=document_id).select_related("collection", "added_by").first()
    if document is None:
        raise ApplicationError("No such document.", code="not_found", status=404)
    try:
        document.collection = collection_get_for(user=user, collection_id=document.collection_id, need=need)
    except ApplicationError as exc:
        if exc.status == 404:
            raise ApplicationError("No such document.", code="not_found", status=404)
        raise
    return document


def passage_get_for(*, user: User, chunk_id: int) -> Chunk:
    """One passage of a ready document in a collection the user may read, with its document and
    collection; anything else is 404, so ids of other people's passages don't leak."""
    chunk = (
        Chunk.objects.filter(pk=chunk_id, document__status=Document.Status.READY)
        .select_related("document", "collection").defer("embedding", "search_vector").first()
    )
    if chunk is None or collection_access(user=user, collection=chunk.collection) is None:
        raise ApplicationError("No such passage.", code="not_found", status=404)
    return chunk


def documents_of_collection(*, collection: Collection) -> QuerySet[Document]:
    return Document.objects.filter(collection=collection).select_related("added_by").order_by("-created_at", "-id")


def chunks_of_document(*, document: Document) -> QuerySet[Chunk]:
    return Chunk.objects.filter(document=document).order_by("ordinal").defer("embedding", "search_vector")


def grants_of_collection(*, collection: Collection) -> QuerySet[CollectionGrant]:
    return CollectionGrant.objects.filter(collection=collection).select_related("user", "team").order_by("id")


def collections_with_counts(*, user: User) -> QuerySet[Collection]:
    return collections_readable(user=user).select_related("owner_user", "owner_team").annotate(
        document_count=Count("documents", distinct=True)
    )


def documents_totals_for_user(*, user: User) -> dict[str, int]:
    """Ready documents and their passages across every collection the user may read (welcome stats)."""
    totals = Document.objects.filter(
        collection__in=collections_readable(user=user).values("id"), status=Document.Status.READY
    ).aggregate(documents=Count("id"), passages=Sum("chunk_count"))
    return {"documents": totals["documents"] or 0, "passages": totals["passages"] or 0}


def documents_ready_count_added_by(*, user_id: int) -> int:
    """How many documents this user added that finished ingesting (the Knowledge Explorer badge)."""
    return Document.objects.filter(added_by_id=user_id, status=Document.Status.READY).count()


def collections_of_team_with_counts(*, team) -> QuerySet[Collection]:
    """The collections a team owns, with their document and passage counts (the team's usage page)."""
    return (Collection.objects.filter(owner_team=team)
            .annotate(document_count=Count("documents"), passage_count=Sum("documents__chunk_count"))
            .order_by("name", "id"))
