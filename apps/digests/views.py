"""Digest settings pages: thin views over the selectors and services.

Anyone may open the settings page; reps, who see no team, get nothing to subscribe to.
A subscription the user may not see is a 404. The unsubscribe link works without a login
(its token is signed) and accepts the one-click POST of RFC 8058.
"""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.errors import ApplicationError
from apps.digests import schedule, selectors, services
from apps.digests.forms import AlertForm, SubscriptionForm
from apps.digests.models import Delivery, DigestAlert, DigestSubscription
from apps.digests.render import html_for_browser

RECENT_DELIVERIES = 30


def _next(request: HttpRequest, default: str) -> HttpResponse:
    """Back to the page the form was on, if it is one of ours."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(default)


def _subscription(request: HttpRequest, pk: int) -> DigestSubscription:
    sub = selectors.subscription_get(user=request.user, pk=pk)
    if sub is None:
        raise Http404("No such subscription.")
    return sub


def _form_errors(form: SubscriptionForm, exc: ApplicationError) -> None:
    fields = exc.extra.get("fields") or {}
    for name, message in fields.items():
        form.add_error(name if name in form.fields else None, message)
    if not fields:
        form.add_error(None, exc.message)


@require_http_methods(["GET"])
def index(request: HttpRequest) -> HttpResponse:
    user = request.user
    subs = list(selectors.subscriptions_visible(user=user).prefetch_related("alerts"))
    deliveries = selectors.deliveries_visible(user=user).defer("payload")[:RECENT_DELIVERIES]
    return render(
        request,
        "digests/index.html",
        {
            "section": "digests",
            "subscriptions": subs,
            "deliveries": deliveries,
            "manages_all": selectors.manages_all(user),
            "defaults": selectors.subscription_defaults(user=user),
        },
    )


def _edit(request: HttpRequest, sub: DigestSubscription | None) -> HttpResponse:
    user = request.user
    if sub is None:
        defaults = selectors.subscription_defaults(user=user) or {}
        initial = {
            "recipient": user.pk,
            "frequency": defaults.get("frequency", "weekly"),
            "weekday": defaults.get("weekday", 0),
            "hour": defaults.get("hour", 7),
            "time_zone": defaults.get("time_zone", "UTC"),
            "team": str(defaults["team"].pk) if defaults.get("team") else "",
            "sections": defaults.get("sections", []),
            "send_digest": True,
            "is_active": True,
        }
    else:
        initial = {
            "recipient": sub.recipient_id,
            "recipient_email": sub.recipient_email,
            "recipient_name": sub.recipient_name,
            "team": str(sub.team_id or ""),
            "frequency": sub.frequency,
            "weekday": sub.weekday,
            "day_of_month": sub.day_of_month,
            "hour": sub.hour,
            "time_zone": sub.time_zone,
            "sections": sub.sections,
            "send_digest": sub.send_digest,
            "is_active": sub.is_active,
        }
    form = SubscriptionForm(request.POST or None, actor=user, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                if sub is None:
                    sub = services.subscription_create(actor=user, **form.values())
                    messages.success(request, "Subscription created.")
                else:
                    sub = services.subscription_update(
                        actor=user, subscription=sub, **form.values()
                    )
                    messages.success(request, "Subscription saved.")
                return redirect("digests:edit", pk=sub.pk)
            except ApplicationError as exc:
                _form_errors(form, exc)
        status = 400
    return render(
        request,
        "digests/edit.html",
        {
            "section": "digests",
            "form": form,
            "subscription": sub,
            "alert_form": AlertForm(),
            "alerts": list(sub.alerts.all()) if sub else [],
            "deliveries": sub.deliveries.defer("payload")[:10] if sub else [],
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
def subscription_new(request: HttpRequest) -> HttpResponse:
    return _edit(request, None)


@require_http_methods(["GET", "POST"])
def subscription_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _edit(request, _subscription(request, pk))


@require_POST
def subscription_remove(request: HttpRequest, pk: int) -> HttpResponse:
    sub = _subscription(request, pk)
    try:
        services.subscription_delete(actor=request.user, subscription=sub)
        messages.success(request, "Subscription deleted.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("digests:index")


def _as_of(request: HttpRequest, sub: DigestSubscription) -> date:
    raw = (request.GET.get("as_of") or "").strip()
    if not raw:
        return timezone.now().astimezone(schedule.zone(sub.time_zone)).date()
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApplicationError(f"as_of must be a date YYYY-MM-DD, got {raw!r}.") from None


def _preview(request: HttpRequest, pk: int) -> tuple[DigestSubscription, dict]:
    sub = _subscription(request, pk)
    return sub, selectors.digest_preview(
        user=request.user, subscription=sub, as_of=_as_of(request, sub)
    )


@require_http_methods(["GET"])
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    sub = _subscription(request, pk)
    context: dict = {"section": "digests", "subscription": sub}
    try:
        found = selectors.digest_preview(
            user=request.user, subscription=sub, as_of=_as_of(request, sub)
        )
    except ApplicationError as exc:
        context["error"] = exc.message
        return render(request, "digests/preview.html", context, status=400)
    payload = found["payload"]
    context.update(
        content=found["content"],
        payload=payload,
        html=html_for_browser(payload),
        image_count=len(payload["images"]),
    )
    return render(request, "digests/preview.html", context)


@require_http_methods(["GET"])
def preview_mail(request: HttpRequest, pk: int) -> HttpResponse:
    """The mail's HTML part alone, images inline, as a mail client shows it."""
    try:
        _, found = _preview(request, pk)
    except ApplicationError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    return HttpResponse(html_for_browser(found["payload"]))


@require_POST
def send_test(request: HttpRequest, pk: int) -> HttpResponse:
    sub = _subscription(request, pk)
    try:
        delivery = services.digest_test_send(actor=request.user, subscription=sub)
        delivery.refresh_from_db()
        if delivery.status == Delivery.Status.SENT:
            messages.success(request, f"Test digest sent to {delivery.to_email}.")
        elif delivery.status == Delivery.Status.FAILED:
            messages.error(request, f"The test could not be sent: {delivery.error}")
        else:
            messages.success(request, f"Test digest queued for {delivery.to_email}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return _next(request, "digests:index")


@require_POST
def alert_add(request: HttpRequest, pk: int) -> HttpResponse:
    sub = _subscription(request, pk)
    form = AlertForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "Alert not added: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()),
        )
        return redirect("digests:edit", pk=sub.pk)
    try:
        services.alert_create(actor=request.user, subscription=sub, **form.cleaned_data)
        messages.success(request, "Alert added.")
    except ApplicationError as exc:
        messages.error(request, f"Alert not added: {exc.message}")
    return redirect("digests:edit", pk=sub.pk)


@require_POST
def alert_remove(request: HttpRequest, pk: int) -> HttpResponse:
    alert = DigestAlert.objects.select_related("subscription").filter(pk=pk).first()
    visible = alert and selectors.subscription_get(user=request.user, pk=alert.subscription_id)
    if alert is None or visible is None:
        raise Http404("No such alert.")
    try:
        services.alert_delete(actor=request.user, alert=alert)
        messages.success(request, "Alert removed.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("digests:edit", pk=alert.subscription_id)


@require_POST
def resend(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = selectors.deliveries_visible(user=request.user).filter(pk=pk).first()
    if delivery is None:
        raise Http404("No such delivery.")
    try:
        services.delivery_resend(actor=request.user, delivery=delivery)
        messages.success(request, f"Resending to {delivery.to_email}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return _next(request, "digests:index")


@login_not_required
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: confirm (mail scanners follow links, so GET changes nothing); POST: the
    one-click unsubscribe, from the confirm button or the mail client (RFC 8058)."""
    from apps.digests.render import unsubscribe_read

    found = unsubscribe_read(token)
    if found is None:
        return render(request, "digests/unsubscribe.html", {"invalid": True}, status=400)
    if request.method == "POST":
        sub = services.subscription_unsubscribe(token=token)
        if sub is None:
            return render(request, "digests/unsubscribe.html", {"invalid": True}, status=400)
        return render(request, "digests/unsubscribe.html", {"done": True, "subscription": sub})
    sub = DigestSubscription.objects.filter(pk=found[0]).first()
    if sub is None:
        return render(request, "digests/unsubscribe.html", {"invalid": True}, status=400)
    return render(request, "digests/unsubscribe.html", {"subscription": sub, "address": found[1]})
