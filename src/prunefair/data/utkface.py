"""UTKFace (Zhang, Song and Qi, CVPR 2017), aligned & cropped faces, from the folder users download.

File names are ``[age]_[gender]_[race]_[date&time].jpg.chip.jpg``; gender 0 male, 1 female; race 0 White,
1 Black, 2 Asian, 3 Indian, 4 Others. Targets and groups: ``ethnicity`` (alias ``race``), ``gender``,
``age`` (binned, lower edges ``age_bins``) and intersections such as ``ethnicity*gender``.
Images are resized to 48x48 by default, as in Tran et al. (NeurIPS 2022).

The upstream names have defects, each handled on purpose and counted in the log and in ``info``:
a name without race (``39_1_2017...``) has unknown ethnicity (usable for gender or age, dropped when
ethnicity is needed); a missing dot (``...357jpg.chip.jpg``) or a stray space before ``.jpg`` is repaired;
any other name that does not parse is skipped. Byte-identical duplicates are handled in ``assemble``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prunefair.data.assemble import LoadOptions, build_grouped
from prunefair.data.attributes import DEFAULT_AGE_BINS, Attribute, bin_ages, select_attribute

log = logging.getLogger("prunefair.data")

ETHNICITIES = ("White", "Black", "Asian", "Indian", "Others")
GENDERS = ("male", "female")
ALIASES = {"race": "ethnicity", "sex": "gender", "age_bin": "age"}
ATTRIBUTES = ("ethnicity", "gender", "age")
DEFAULT_IMAGE_SIZE = 48
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)

_SUFFIX = re.compile(r"\s*\.?jpg\.chip\.jpg$")


@dataclass(frozen=True)
class ParsedName:
    age: int
    gender: int
    race: int  # -1: no race field
    repaired: bool  # a missing dot or stray space was fixed


MAX_AGE = 116  # the dataset's documented range is 0 to 116


def parse_name(name: str) -> ParsedName | None:
    """Attributes from one UTKFace file name, or None when it cannot be read without guessing."""
    m = _SUFFIX.search(name)
    if m is None:
        return None
    stem = name[: m.start()]
    repaired = m.group(0) != ".jpg.chip.jpg" or stem != stem.strip()
    fields = stem.strip().split("_")
    if len(fields) not in (3, 4) or not all(f.isascii() and f.isdigit() for f in fields):  # not '2²' or '٣٥'
        return None
    if len(fields) == 3 and len(fields[2]) < 8:  # age_gender_X: X must be the date (17 digits), not a race
        return None
    age, gender = int(fields[0]), int(fields[1])
    race = int(fields[2]) if len(fields) == 4 else -1
    if gender not in (0, 1) or race >= len(ETHNICITIES) or age > MAX_AGE:
        return None
    return ParsedName(age, gender, race, repaired)


def scan_folder(root: str | Path) -> tuple[list[str], list[ParsedName], dict]:
    """Every ``*.jpg`` under ``root`` (flat), parsed; the counts of each kind of quirk."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data.root = {str(root)!r}: UTKFace folder not found")
    # a link to nothing is a missing image (decoding names it, or skip_unreadable counts it), not a file to ignore
    try:
        entries = [p for p in root.iterdir() if p.is_file() or (p.is_symlink() and not p.exists())]
    except PermissionError as exc:
        raise PermissionError(f"data.root = {str(root)!r}: cannot list the UTKFace folder ({exc.strerror}); make it "
                              "readable") from None
    names = sorted(p.name for p in entries if p.name.endswith("jpg"))
    other_images = sorted(p.name for p in entries if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                          and not p.name.endswith("jpg"))
    if other_images:  # UTKFace's names all end in "jpg": these are not read, and are said to be
        log.warning("UTKFace: %d image file(s) not read: their names do not end in 'jpg' as UTKFace's do: %s",
                    len(other_images), other_images[:5])
    if not names:
        raise FileNotFoundError(f"data.root = {str(root)!r}: no *.jpg files (expected UTKFace's "
                                f"[age]_[gender]_[race]_[date&time].jpg.chip.jpg){_subfolder_hint(root)}")
    files, parsed, unparsed, no_race, repaired = [], [], [], [], []
    for n in names:
        p = parse_name(n)
        if p is None:
            unparsed.append(n)
            continue
        files.append(str(root / n))
        parsed.append(p)
        if p.race < 0:
            no_race.append(n)
        if p.repaired:
            repaired.append(n)
    stats = {"files_found": len(names), "skipped_unparseable_name": len(unparsed), "names_without_race": len(no_race),
             "names_repaired": len(repaired), "skipped_other_extension": len(other_images)}
    if not files:  # nothing would be left to split: say why here, not as an empty split
        plain = " (names ending in a plain '.jpg' are another UTKFace release, the in-the-wild or uncropped faces: " \
            "give the folder of aligned & cropped faces)" if all(not n.endswith(".chip.jpg") for n in unparsed) else ""
        raise ValueError(f"data.root = {str(root)!r}: none of the {len(names)} *.jpg file name(s) parses as UTKFace's "
                         f"[age]_[gender]_[race]_[date&time].jpg.chip.jpg, e.g. {unparsed[0]!r}{plain}")
    if unparsed:
        log.warning("UTKFace: skipped %d file(s) whose name does not parse: %s", len(unparsed), unparsed[:5])
    if no_race:
        log.warning("UTKFace: %d file(s) have no race field (ethnicity unknown): %s", len(no_race), no_race)
    if repaired:
        log.warning("UTKFace: %d name(s) repaired (missing dot or stray space): %s", len(repaired), repaired)
    return files, parsed, stats


def _subfolder_hint(root: Path) -> str:
    """'; its subfolder UTKFace holds 23708 *.jpg.chip.jpg files: set data.root to it' (an archive extracted one
    level up), or ''."""
    try:
        found = [(sum(1 for f in d.iterdir() if f.name.endswith(".chip.jpg")), d) for d in sorted(root.iterdir())
                 if d.is_dir()]
    except OSError:
        return ""
    found = [(n, d) for n, d in found if n]
    if not found:
        return ""
    n, d = max(found, key=lambda t: t[0])
    return f"; its subfolder {d.name} holds {n} *.jpg.chip.jpg file(s): set data.root = {str(d)!r}"


def utkface_attributes(parsed: list[ParsedName], age_bins=DEFAULT_AGE_BINS) -> dict[str, Attribute]:
    return {
        "ethnicity": Attribute(np.array([p.race for p in parsed], dtype=np.int64), ETHNICITIES),
        "gender": Attribute(np.array([p.gender for p in parsed], dtype=np.int64), GENDERS),
        "age": bin_ages(np.array([p.age for p in parsed], dtype=np.int64), age_bins),
    }


def load_utkface(*, root=None, target="ethnicity", group="ethnicity", image_size=None, options=None) -> dict:
    options = dict(options or {})
    files, parsed, stats = scan_folder(root)
    attrs = utkface_attributes(parsed, options.get("age_bins") or DEFAULT_AGE_BINS)
    y = select_attribute(attrs, target, key="target", aliases=ALIASES)
    g = select_attribute(attrs, group, key="group", aliases=ALIASES)
    data, clusters = build_grouped(
        files, y, g, image_size=image_size or DEFAULT_IMAGE_SIZE, options=LoadOptions.from_dict(options),
        mean=MEAN, std=STD, info={"dataset": "utkface", "root": str(root), **stats},
    )
    return {"all": data, "clusters": clusters}
