"""The admin dashboard's page at / (the browser test is tests/dashboard/): served from the
bytes compiled into the binary, so it works from any working directory and in the image."""
import os

from junction_test import ROOT, request


def test_root_serves_the_dashboard_compiled_into_the_binary(make_junction):
    j = make_junction()
    r = request(j.admin + "/")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Cache-Control"] == "no-store"
    with open(os.path.join(ROOT, "web", "dashboard.html"), "rb") as f:
        assert r.body == f.read()
    # Only GET: anything else is told which method works.
    r = request(j.admin + "/", method="POST", body="")
    assert r.status == 405 and r.headers["Allow"] == "GET, HEAD"


def test_unknown_admin_route_names_the_dashboard(make_junction):
    j = make_junction()
    r = request(j.admin + "/nope")
    assert r.status == 404 and "/ (the dashboard)" in r.json()["error"]
