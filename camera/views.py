"""Pages: the list of streams and a stream's live viewer."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from camera.selectors import stream_get, stream_viewable, streams_visible


def stream_index(request: HttpRequest) -> HttpResponse:
    """Streams this visitor may watch."""
    streams = streams_visible(user=request.user)
    return render(request, "camera/index.html", {"streams": streams})


@ensure_csrf_cookie  # a signed-in viewer's page fetches socket tickets with it
def stream_viewer(request: HttpRequest, stream_id: str) -> HttpResponse:
    stream = stream_get(slug=stream_id)
    if stream is None:
        raise Http404("no stream with this id")
    if not stream_viewable(stream=stream, user=request.user):
        return redirect_to_login(request.get_full_path())
    return render(
        request,
        "camera/viewer.html",
        {"stream": stream, "info": stream.info_payload()},
    )
