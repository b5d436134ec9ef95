"""PathNamer: aliases for known roots in paths and in free text (display only)."""

from glibc_doctor.tui.widgets.render import PathNamer


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
