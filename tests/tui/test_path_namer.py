"""PathNamer: aliases for known roots in paths and in free text (display only)."""

from glibc_doctor.tui.widgets.describe import PathNamer


def test_a_path_under_an_aliased_root_takes_the_alias() -> None:
    assert PathNamer({"/root": "~"})("/root/.cache/x.so") == "~/.cache/x.so"


def test_a_sibling_whose_name_starts_like_the_root_keeps_its_name() -> None:
    assert PathNamer({"/root": "~"})("/rootfs/lib/libc.so.6") == "/rootfs/lib/libc.so.6"


def test_free_text_renames_whole_components_only() -> None:
    namer = PathNamer({"/root": "~"})
    text = "loaded /root/a.so (not /rootfs/b.so) from /root"
    assert namer.text(text) == "loaded ~/a.so (not /rootfs/b.so) from ~"


def test_the_longest_root_wins_in_free_text() -> None:
    namer = PathNamer({"/lab": "$LAB", "/lab/venv": "$VENV"})
    assert namer.text("see /lab/venv/bin and /lab/store") == "see $VENV/bin and $LAB/store"


HASH = "32yyd7fx2jrs4ks0hn2zq8y1m0z7mdn8"


def test_a_store_path_shows_its_name_and_a_hash_prefix() -> None:
    path = f"/nix/store/{HASH}-glibc-2.31/lib/libc.so.6"
    assert PathNamer()(path) == "…/store/32yy…-glibc-2.31/lib/libc.so.6"


def test_an_alias_applies_before_the_store_hash_is_elided() -> None:
    namer = PathNamer({f"/nix/store/{HASH}-glibc-2.31": "$GLIBC", "/lab": "$LAB"})
    assert namer(f"/nix/store/{HASH}-glibc-2.31/lib/libc.so.6") == "$GLIBC/lib/libc.so.6"
    assert namer(f"/lab/store/{HASH}-python3.9/bin/python") == "$LAB/store/32yy…-python3.9/bin/python"


def test_free_text_elides_store_hashes_after_the_aliases() -> None:
    namer = PathNamer({"/root": "~"})
    text = f"PT_INTERP of /nix/store/{HASH}-glibc-2.31/lib/ld.so, not /root/a.so"
    assert namer.text(text) == "PT_INTERP of …/store/32yy…-glibc-2.31/lib/ld.so, not ~/a.so"


def test_an_alias_with_backslashes_is_shown_as_it_is() -> None:
    assert PathNamer({"/lab": r"C:\lab\g<0>"}).text("/lab/x") == r"C:\lab\g<0>/x"
