"""Group commit, measured where it acts: the database thread's time per stored post.

    .venv/bin/python -m bench.group_commit                 # SQLite file, 2,000 posts
    DATABASE_URL=postgres://... .venv/bin/python -m bench.group_commit --posts 1000

A chat post is one transaction (the session's ``last_seq`` bumped, the row inserted,
committed). Posts from sockets go through ``sessions_app.posting``'s queue: those
arriving while a batch is stored share the next one (``posting.messages_post``, one
transaction, a savepoint each). This times the same posts stored alone
(``message_post``, as REST does) and in batches of each ``--batches`` size, alternating,
on a throw-away database (a fresh SQLite file unless ``DATABASE_URL`` is set), and
prints milliseconds of database-thread time per post. docs/performance.md has the
figures.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _setup(db_path: str) -> None:
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{db_path}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def measure(posts: int, batches: list[int], rounds: int = 3) -> dict[str, float]:
    """ms per post for ``alone`` and each batch size: the best of ``rounds``."""
    from django.contrib.auth import get_user_model

    from sessions_app import posting, services

    host = get_user_model().objects.create_user("bench-host", password="x" * 12)
    session = services.session_create(host=host, title="group commit")
    participant, _ = services.participant_guest_join(session=session, nickname="ann")
    post = {"session_id": session.pk, "participant": participant, "content": "hi"}

    def alone() -> None:
        for _ in range(posts):
            services.message_post(**post)

    def batched(size: int):
        def run() -> None:
            for _ in range(0, posts, size):
                posting.messages_post(posts=[post] * size)

        return run

    runs = {"alone": alone, **{f"batch {size}": batched(size) for size in batches}}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: seconds / posts * 1000 for name, seconds in best.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, default=2000)
    ap.add_argument("--batches", default="8,32,100", help="batch sizes (8,32,100)")
    args = ap.parse_args(argv)
    sizes = [int(n) for n in args.batches.split(",") if n]
    with tempfile.TemporaryDirectory() as tmp:
        _setup(str(Path(tmp) / "group-commit.sqlite3"))
        results = measure(args.posts, sizes)
    alone = results["alone"]
    print(f"{'stored':<10} {'ms/post':>8} {'vs alone':>9}")
    for name, ms in results.items():
        print(f"{name:<10} {ms:8.3f} {alone / ms:8.2f}x")
    return results


if __name__ == "__main__":
    main()
