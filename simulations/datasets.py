"""Few-shot transfer data: source classes to train on, held-out samples of them, new classes.

The experiment of Galanti, György & Hutter (ICLR 2022, §5) trains a network on many *source*
classes and watches the class-distance normalised variance (CDNV, THEORY.md T0) fall on the
training samples, on held-out samples of the same classes, and on *new* classes, while the
few-shot accuracy on the new classes rises (T1, T4). Every generator and loader here returns a
:class:`FewShotSplits` with exactly those three parts (plus an optional validation class set
for the real benchmarks):

- :func:`gaussian_mixture`: Gaussian classes in a latent space pushed through a fixed random
  two-layer tanh network (vectors; the quick MLP experiment).
- :func:`glyphs`: characters rendered with the fonts that ship with matplotlib (DejaVu, STIX,
  Computer Modern); each character is a class; samples vary by font, weight, slant, a random
  affine map and pixel noise. Thousands of classes, deterministic from a seed, cached on disk.
- :func:`cifar_fs`, :func:`fc100`: the CIFAR-100 python archive with the standard class splits.
- :func:`mini_imagenet`: the common pickle caches or an image folder.

The real-data loaders read only the path they are given (never the network), unpickle only
plain containers and numpy arrays (:func:`safe_unpickle`) and refuse archives with members
that would land outside their folder (:func:`safe_extract`).

Images are ``float32`` arrays of shape (N, C, H, W) with values in [0, 1]; vectors are (N, d).
Labels are ``int64`` and keep the original class ids (a codepoint, a CIFAR-100 fine label);
:meth:`ArrayDataset.dense_labels` gives 0..C-1 for a cross-entropy head.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
import numbers
import os
import pickle
import posixpath
import tarfile
import tempfile
import types
import unicodedata
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ncbounds._errors import NCBoundsError, NCBoundsWarning
from ncbounds._validation import as_generator, check_positive_int, describe

__all__ = [
    "ArrayDataset",
    "FewShotSplits",
    "gaussian_mixture",
    "glyphs",
    "glyph_classes",
    "default_cache_dir",
    "cifar_fs",
    "fc100",
    "mini_imagenet",
    "safe_unpickle",
    "safe_extract",
    "CIFAR_FS_SPLIT",
    "FC100_SPLIT",
]


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayDataset:
    """Samples and labels held as numpy arrays.

    Attributes
    ----------
    x : ndarray
        ``float32`` (or ``uint8`` when a loader was asked for raw bytes); images (N, C, H, W),
        vectors (N, d).
    y : ndarray
        ``int64`` (N,), the original class ids.
    class_names : Mapping[int, str] or None
        Name of each class id (read-only), when known.

    >>> ds = ArrayDataset(np.zeros((3, 2), np.float32), np.array([7, 3, 7]))
    >>> ds.classes, ds.dense_labels(), len(ds)
    (array([3, 7]), array([1, 0, 1]), 3)
    """

    x: np.ndarray
    y: np.ndarray
    class_names: Mapping[int, str] | None = None

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if not isinstance(x, np.ndarray) or x.ndim not in (2, 4) or x.dtype not in (
            np.float32,
            np.uint8,
        ):
            raise NCBoundsError(
                "x: expected a float32 (or uint8) numpy array of shape (N, d) or (N, C, H, W), "
                f"got {describe(x)}"
            )
        if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype.kind not in "iu":
            raise NCBoundsError(f"y: expected 1-D integer labels, got {describe(y)}")
        if y.shape[0] != x.shape[0]:
            raise NCBoundsError(
                f"y: expected one label per sample ({x.shape[0]}), got {y.shape[0]} labels"
            )
        object.__setattr__(self, "y", y.astype(np.int64, copy=False))
        if self.class_names is not None:
            names = {int(k): str(v) for k, v in dict(self.class_names).items()}
            missing = sorted(set(np.unique(y).tolist()) - set(names))
            if missing:
                raise NCBoundsError(
                    f"class_names: expected a name for every label, missing {missing[:5]}"
                )
            object.__setattr__(self, "class_names", types.MappingProxyType(names))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(x: {self.x.shape} {self.x.dtype}, y: {len(self)} labels, "
            f"{self.n_classes} classes)"
        )

    @property
    def classes(self) -> np.ndarray:
        """The class ids present, sorted."""
        return np.unique(self.y)

    @property
    def n_classes(self) -> int:
        return int(self.classes.size)

    def dense_labels(self) -> np.ndarray:
        """Labels renumbered 0..C-1 in the order of :attr:`classes` (for a softmax head)."""
        return np.searchsorted(self.classes, self.y).astype(np.int64)

    def subset(self, index: Any) -> ArrayDataset:
        """The samples selected by ``index`` (an index array or a boolean mask)."""
        return ArrayDataset(self.x[index], self.y[index], self.class_names)

    def to_torch(self, *, dense_labels: bool = False) -> Any:
        """A ``torch.utils.data.TensorDataset`` sharing memory with the arrays.

        ``dense_labels=True`` gives labels 0..C-1 (see :meth:`dense_labels`).
        """
        import torch  # lazily: only callers that want torch pay for it
        from torch.utils.data import TensorDataset

        y = self.dense_labels() if dense_labels else self.y
        return TensorDataset(torch.from_numpy(np.ascontiguousarray(self.x)), torch.from_numpy(y))


@dataclasses.dataclass(frozen=True, eq=False)
class FewShotSplits:
    """The three parts of a transfer experiment, with disjoint source and target classes.

    Attributes
    ----------
    source_train : ArrayDataset
        Samples of the source classes to train on.
    source_test : ArrayDataset
        Held-out samples of (a subset of) the same source classes.
    target : ArrayDataset
        Samples of new classes, disjoint from the source classes (few-shot episodes are drawn
        here).
    validation : ArrayDataset or None
        A third disjoint class set for model selection (the real benchmarks have one).
    meta : Mapping
        Name, seed, parameters and provenance (read-only).
    """

    source_train: ArrayDataset
    source_test: ArrayDataset
    target: ArrayDataset
    validation: ArrayDataset | None = None
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        src = set(self.source_train.classes.tolist())
        extra = sorted(set(self.source_test.classes.tolist()) - src)
        if extra:
            raise NCBoundsError(
                "source_test: expected only source classes, got classes absent from "
                f"source_train: {extra[:5]}"
            )
        parts = {"source": src, "target": set(self.target.classes.tolist())}
        if self.validation is not None:
            parts["validation"] = set(self.validation.classes.tolist())
        names = list(parts)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                common = sorted(parts[a] & parts[b])
                if common:
                    raise NCBoundsError(
                        f"{b}: expected classes disjoint from the {a} classes, "
                        f"got {len(common)} shared: {common[:5]}"
                    )
        object.__setattr__(self, "meta", types.MappingProxyType(dict(self.meta)))

    @property
    def source_classes(self) -> np.ndarray:
        return self.source_train.classes

    @property
    def target_classes(self) -> np.ndarray:
        return self.target.classes

    def __repr__(self) -> str:
        parts = [f"source_train={self.source_train!r}", f"source_test={self.source_test!r}",
                 f"target={self.target!r}"]
        if self.validation is not None:
            parts.append(f"validation={self.validation!r}")
        return f"FewShotSplits({self.meta.get('name', '?')}: " + ", ".join(parts) + ")"


def _split_per_class(
    x: np.ndarray, y: np.ndarray, n_test: int, names: Mapping[int, str] | None = None
) -> tuple[ArrayDataset, ArrayDataset]:
    """Train/test split that holds out the last ``n_test`` samples of every class."""
    order = np.argsort(y, kind="stable")
    starts = np.flatnonzero(np.r_[True, y[order][1:] != y[order][:-1]])
    ends = np.r_[starts[1:], y.size]
    # position of each (class-sorted) sample counted from the end of its class
    from_end = np.repeat(ends, np.diff(np.r_[starts, y.size])) - np.arange(y.size) - 1
    test = np.zeros(y.shape[0], dtype=bool)
    test[order[from_end < n_test]] = True
    return ArrayDataset(x[~test], y[~test], names), ArrayDataset(x[test], y[test], names)


def _resolve_seed(rng: Any) -> int:
    """An int seed from ``rng``: the int itself, or one draw from a Generator."""
    if isinstance(rng, (numbers.Integral, np.integer)) and not isinstance(rng, bool):
        as_generator(rng)  # validates (non-negative)
        return int(rng)
    return int(as_generator(rng).integers(2**63))


def _check_test_per_class(test_per_class: Any, per_class: int) -> int:
    n_test = max(1, per_class // 5) if test_per_class is None else test_per_class
    n_test = check_positive_int(n_test, "test_per_class", minimum=0)
    if n_test >= per_class:
        raise NCBoundsError(
            f"test_per_class: expected fewer than per_class ({per_class}) samples, got {n_test}"
        )
    return n_test


def _check_float(value: Any, name: str, lo: float, hi: float = math.inf) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NCBoundsError(
            f"{name}: expected a number in [{lo}, {hi}), got {describe(value)}"
        ) from None
    if not (lo <= v < hi):
        raise NCBoundsError(f"{name}: expected a number in [{lo}, {hi}), got {v!r}")
    return v


# --------------------------------------------------------------------------------------------
# Gaussian mixture through a random network
# --------------------------------------------------------------------------------------------


def gaussian_mixture(
    *,
    n_source_classes: int = 64,
    n_target_classes: int = 20,
    per_class: int = 100,
    test_per_class: int | None = None,
    input_dim: int = 64,
    latent_dim: int = 16,
    hidden_dim: int | None = None,
    spread: float = 1.0,
    rng: Any = 0,
) -> FewShotSplits:
    r"""Many Gaussian classes pushed through a fixed random nonlinear map.

    Class :math:`c` has a latent mean :math:`m_c \sim N(0, I_k)` (:math:`k` = ``latent_dim``);
    its samples are :math:`x = \varphi(m_c + s\,\varepsilon)`, :math:`\varepsilon \sim N(0, I_k)`,
    :math:`s` = ``spread``, with the map (a random two-layer network, drawn once per seed)

    .. math:: \varphi(z) = W_2 \tanh(W_1 z + b_1) / \sqrt{h},\qquad
              W_1 \sim N(0, \tfrac1k)^{h \times k},\ b_1 \sim N(0, \tfrac14)^{h},\
              W_2 \sim N(0, 1)^{d \times h}

    (:math:`h` = ``hidden_dim``, default ``2 * input_dim``; :math:`d` = ``input_dim``). In the
    latent space the population CDNV (THEORY.md T0) of two classes is
    :math:`s^2 k / \lVert m_i - m_j \rVert^2`, about :math:`s^2/2` on average; the map bends the
    classes so that a network has something to learn before they collapse.

    Classes ``0 .. n_source_classes-1`` are the source classes, the next ``n_target_classes``
    the target classes. Each class has ``per_class`` samples; of each source class the last
    ``test_per_class`` (default ``per_class // 5``) form ``source_test``.

    Deterministic per seed: ``rng`` is an int seed or a Generator (advanced by one draw).
    Returns a :class:`FewShotSplits` with ``float32`` vectors (N, ``input_dim``).

    >>> s = gaussian_mixture(n_source_classes=4, n_target_classes=2, per_class=10,
    ...                      input_dim=8, latent_dim=3, rng=1)
    >>> s.source_train.x.shape, s.source_test.x.shape, s.target.x.shape
    ((32, 8), (8, 8), (20, 8))
    >>> s.source_classes.tolist(), s.target_classes.tolist()
    ([0, 1, 2, 3], [4, 5])
    """
    n_src = check_positive_int(n_source_classes, "n_source_classes")
    n_tgt = check_positive_int(n_target_classes, "n_target_classes")
    per_class = check_positive_int(per_class, "per_class", minimum=2)
    n_test = _check_test_per_class(test_per_class, per_class)
    d = check_positive_int(input_dim, "input_dim")
    k = check_positive_int(latent_dim, "latent_dim")
    h = check_positive_int(2 * d if hidden_dim is None else hidden_dim, "hidden_dim")
    s = _check_float(spread, "spread", 0.0)
    seed = _resolve_seed(rng)
    children = np.random.SeedSequence(seed).spawn(3)
    g_map, g_means, g_noise = (np.random.default_rng(c) for c in children)

    w1 = g_map.standard_normal((k, h)) / math.sqrt(k)
    b1 = 0.5 * g_map.standard_normal(h)
    w2 = g_map.standard_normal((h, d)) / math.sqrt(h)
    n_cls = n_src + n_tgt
    means = g_means.standard_normal((n_cls, k))
    y = np.repeat(np.arange(n_cls, dtype=np.int64), per_class)
    z = means[y] + s * g_noise.standard_normal((y.size, k))
    x = (np.tanh(z @ w1 + b1) @ w2).astype(np.float32)

    src = y < n_src
    source_train, source_test = _split_per_class(x[src], y[src], n_test)
    meta = {
        "name": "gaussian_mixture",
        "seed": seed,
        "params": dict(n_source_classes=n_src, n_target_classes=n_tgt, per_class=per_class,
                       test_per_class=n_test, input_dim=d, latent_dim=k, hidden_dim=h,
                       spread=s),
    }
    return FewShotSplits(source_train, source_test, ArrayDataset(x[~src], y[~src]), meta=meta)


# --------------------------------------------------------------------------------------------
# Glyphs rendered from matplotlib's fonts
# --------------------------------------------------------------------------------------------

# The font files shipped in matplotlib's mpl-data/fonts/ttf used by default: DejaVu Sans, Serif
# and Sans Mono in four weight/slant styles, STIX General in four, and the Computer Modern
# text fonts (their glyphs are mapped to Unicode by PostScript glyph name). Left out: the
# LastResort font (a placeholder box for every codepoint), the "Display" and STIX size/non-
# Unicode fonts (a few large or private-use glyphs) and cmex10 (display-size math symbols).
_DEFAULT_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmti10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmmi10.ttf",
    "cmsy10.ttf",
)
# The Computer Modern fonts use TeX encodings, not Unicode: their glyphs are identified by name.
_TEX_ENCODED = ("cmr10", "cmb10", "cmti10", "cmss10", "cmtt10", "cmmi10", "cmsy10", "cmex10")
_GREEK = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega"
).split()
_GLYPH_FORMAT = 2  # bump when rendering changes, so old cache files are not reused
_OVERSAMPLE = 2  # templates are rendered at twice the output resolution, then box-filtered
_EM = 0.8  # font size (em) as a fraction of the image side
_BASELINE = 0.33  # the baseline sits this many em below the image centre


def _ft2font() -> Any:
    from matplotlib import ft2font  # lazily: matplotlib is only needed for glyphs

    return ft2font


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _resolve_fonts(fonts: Sequence[str | os.PathLike[str]] | None) -> tuple[str, ...]:
    """Absolute paths of the font files: names in matplotlib's font folder, or paths."""
    folder = _font_dir()
    specs = _DEFAULT_FONTS if fonts is None else fonts
    if isinstance(specs, (str, os.PathLike)) or not isinstance(specs, Iterable):
        raise NCBoundsError(
            f"fonts: expected a sequence of font names or paths, got {describe(fonts)}"
        )
    paths = []
    for spec in specs:
        p = Path(spec)
        candidates = [p] if p.is_absolute() or p.parent != Path(".") else []
        candidates += [folder / p.name, folder / (p.name + ".ttf")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            available = sorted(f.name for f in folder.glob("*.ttf"))
            raise NCBoundsError(
                f"fonts: expected font files or names in {folder} (for example "
                f"{', '.join(available[:6])}, ...), got {str(spec)!r}"
            )
        paths.append(str(found.resolve()))
    if not paths:
        raise NCBoundsError("fonts: expected at least one font, got an empty sequence")
    return tuple(dict.fromkeys(paths))


def _admissible(cp: int) -> bool:
    """A character worth a class: a letter, digit, punctuation or symbol that is its own
    compatibility normal form (no ligatures, superscripts, styled math letters, ...)."""
    ch = chr(cp)
    return unicodedata.category(ch)[0] in "LNPS" and unicodedata.normalize("NFKC", ch) == ch


def _unicode_of_glyph_name(name: str) -> int | None:
    if name.lower() in _GREEK:
        case = "SMALL" if name.islower() else "CAPITAL"
        letter = name.upper().replace("LAMBDA", "LAMDA")  # Unicode spells it LAMDA
        return ord(unicodedata.lookup(f"GREEK {case} LETTER {letter}"))
    try:
        from matplotlib._mathtext_data import type12uni  # glyph name -> codepoint table
    except ImportError:  # pragma: no cover - the table has shipped with matplotlib for years
        type12uni = {}
    if name in type12uni:
        return int(type12uni[name])
    return ord(name) if len(name) == 1 else None


@functools.lru_cache(maxsize=64)
def _font_coverage(path: str) -> Mapping[int, int]:
    """Codepoint -> the font's own character code, for the admissible characters of a font."""
    font = _ft2font().FT2Font(path)
    stem = Path(path).stem
    out: dict[int, int] = {}
    for code, index in font.get_charmap().items():
        if stem in _TEX_ENCODED:
            name = font.get_glyph_name(index)
            if stem in ("cmsy10", "cmex10") and len(name) == 1:
                continue  # calligraphic capitals: a different letterform, not the letter
            cp = _unicode_of_glyph_name(name)
        else:
            cp = int(code)
        if cp is not None and _admissible(cp):
            out.setdefault(cp, int(code))
    return types.MappingProxyType(out)


def glyph_classes(
    fonts: Sequence[str | os.PathLike[str]] | None = None, *, min_fonts: int = 3
) -> np.ndarray:
    """Codepoints that at least ``min_fonts`` of the fonts contain: the candidate classes of
    :func:`glyphs`, sorted. Rendering drops a few percent of them (empty glyphs and glyphs
    that duplicate another class), so this is an upper bound on the classes available.

    >>> cps = glyph_classes()
    >>> cps.size > 3000, int(cps[0]) == ord("!")
    (True, True)
    """
    min_fonts = check_positive_int(min_fonts, "min_fonts")
    counts: dict[int, int] = {}
    for path in _resolve_fonts(fonts):
        for cp in _font_coverage(path):
            counts[cp] = counts.get(cp, 0) + 1
    return np.array(sorted(cp for cp, n in counts.items() if n >= min_fonts), dtype=np.int64)


class _GlyphRenderer:
    """Renders one character of one font into an ink crop and its placement.

    The glyph is drawn by FreeType (matplotlib's ``ft2font``, unhinted, anti-aliased) at
    ``_EM`` of the template side, its baseline ``_BASELINE`` em below the centre and its
    advance box centred horizontally; a glyph that would leave the template is shrunk, then
    shifted inside.
    """

    def __init__(self, paths: Sequence[str], side: int) -> None:
        ft2font = _ft2font()
        self.fonts = [ft2font.FT2Font(p) for p in paths]
        self.flags = getattr(getattr(ft2font, "LoadFlags", None), "NO_HINTING", 2)
        self.side = side  # template side in pixels
        self.half = side / 2 - _OVERSAMPLE  # keep one output pixel of margin

    def render(self, font_index: int, code: int) -> tuple[np.ndarray, float, float] | None:
        """(crop as float32 in [0, 1], row and column of the image centre in the crop)."""
        font = self.fonts[font_index]
        em = _EM * self.side
        for _ in range(4):
            font.set_size(em, 72)
            glyph = font.load_char(code, flags=self.flags)
            font.clear()
            font.set_text(chr(code), 0.0, flags=self.flags)
            font.draw_glyphs_to_bitmap(antialiased=True)
            img = np.asarray(font.get_image())
            rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
            if rows.size == 0:
                return None
            crop = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            h, w = crop.shape
            if max(h, w) <= 2 * self.half:
                # top-left corner of the ink relative to the image centre, kept inside
                top = min(max(_BASELINE * em - glyph.horiBearingY / 64, -self.half), self.half - h)
                left = glyph.horiBearingX / 64 - glyph.horiAdvance / 128
                left = min(max(left, -self.half), self.half - w)
                return crop.astype(np.float32) / 255, -top, -left
            em *= 0.98 * 2 * self.half / max(h, w)
        return None  # pragma: no cover - four shrinks always fit

    def templates(
        self, fonts_codes: Sequence[tuple[int, int]]
    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """The non-empty renders as templates (n, side, side), their centres (n, 2) and
        the indices of the fonts they came from."""
        crops, centres, used = [], [], []
        for fi, code in fonts_codes:
            r = self.render(fi, code)
            if r is not None:
                crops.append(r[0])
                centres.append(r[1:])
                used.append(fi)
        # the crop sits one pixel from the top-left corner; crops are at most side - 4 wide,
        # so a zero border of one pixel before and three after surrounds it (see _warp)
        out = np.zeros((len(crops), self.side, self.side), np.float32)
        for t, c in zip(out, crops):
            t[1 : c.shape[0] + 1, 1 : c.shape[1] + 1] = c
        return out, np.array(centres, dtype=np.float64).reshape(-1, 2) + 1.0, used


def _warp(
    templates: np.ndarray, centres: np.ndarray, which: np.ndarray, inv: np.ndarray,
    shift: np.ndarray, size: int,
) -> np.ndarray:
    """Images (n, size, size) sampled from templates through affine maps.

    Output point q (pixel units, relative to the image centre) reads template ``which[i]``
    at ``centres[which[i]] + _OVERSAMPLE * inv[i] @ (q - shift[i])`` (template pixel units,
    pixel r covering [r, r + 1)) with bilinear interpolation, on an ``_OVERSAMPLE``-times finer
    grid that is then box-filtered. The templates carry a zero border, so clipping the
    indices into the template reads zeros outside the glyph.
    """
    g = _OVERSAMPLE
    side = templates.shape[1]
    axis = ((np.arange(size * g) + 0.5) / g - size / 2).astype(np.float32)
    qy = np.repeat(axis, axis.size)[None]
    qx = np.tile(axis, axis.size)[None]
    m = (g * inv).astype(np.float32)  # (n, 2, 2)
    # p = (centre - 0.5 - m @ shift) + m @ q, in pixel-centre index coordinates, clamped into
    # the zero border (row/column 0 and the last two), which leaves every value unchanged
    off = (centres[which] - 0.5 - np.einsum("nij,nj->ni", g * inv, shift)).astype(np.float32)
    py = np.clip(off[:, :1] + m[:, 0, :1] * qy + m[:, 0, 1:] * qx, 0, side - 2)
    px = np.clip(off[:, 1:] + m[:, 1, :1] * qy + m[:, 1, 1:] * qx, 0, side - 2)
    y0, x0 = np.floor(py), np.floor(px)
    fy, fx = py - y0, px - x0
    i00 = (which.astype(np.int32) * (side * side))[:, None] + (
        y0.astype(np.int32) * side + x0.astype(np.int32)
    )
    flat = templates.reshape(-1)
    top = flat[i00] * (1 - fx) + flat[i00 + 1] * fx
    i00 += side
    bottom = flat[i00] * (1 - fx) + flat[i00 + 1] * fx
    fine = (top * (1 - fy) + bottom * fy).reshape(-1, size, g, size * g)
    rows = sum(fine[:, :, k] for k in range(1, g)) + fine[:, :, 0]  # box filter, rows first
    rows = rows.reshape(-1, size, size, g)
    return (sum(rows[..., k] for k in range(1, g)) + rows[..., 0]) * np.float32(1 / g**2)


class _Bank:
    """The undistorted images of the kept classes in one font, queried for near-duplicates.

    ``near(img)`` tells whether some stored image b has
    ``||img - b|| < threshold * max(||img||, ||b||)``. The block means of k x k blocks (k
    divides the side) give a lower bound on the distance (projecting onto block-constant
    images shrinks distances), which discards most rows before the exact comparison.
    """

    def __init__(self, size: int, threshold: float) -> None:
        self.k = next(k for k in (4, 2, 1) if size % k == 0)
        self.thr2 = threshold**2
        self.full = np.empty((16, size * size))
        self.low = np.empty((16, (size // self.k) ** 2))
        self.sq = np.empty(16)
        self.m = 0

    def _project(self, img: np.ndarray) -> np.ndarray:
        # block sums / k: its norm is the norm of the projection onto block-constant images
        n, k = img.shape[0] // self.k, self.k
        return img.reshape(n, k, n, k).sum(axis=(1, 3)).ravel() / k

    def add(self, img: np.ndarray) -> None:
        if self.m == self.sq.size:
            self.full, self.low, self.sq = (np.concatenate([a, np.empty_like(a)])
                                            for a in (self.full, self.low, self.sq))
        v = img.ravel()
        self.full[self.m], self.low[self.m], self.sq[self.m] = v, self._project(img), v @ v
        self.m += 1

    def near(self, img: np.ndarray) -> bool:
        v = img.ravel()
        bound = self.thr2 * np.maximum(self.sq[: self.m], v @ v)
        low = ((self.low[: self.m] - self._project(img)) ** 2).sum(axis=1)
        rows = np.flatnonzero(low < bound)
        exact = ((self.full[rows] - v) ** 2).sum(axis=1)
        return bool((exact < bound[rows]).any())


def default_cache_dir() -> Path:
    """``$NCBOUNDS_CACHE`` if set, else ``$XDG_CACHE_HOME/ncbounds`` or ``~/.cache/ncbounds``."""
    env = os.environ.get("NCBOUNDS_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "ncbounds"


def glyphs(
    *,
    n_source_classes: int = 100,
    n_target_classes: int = 20,
    per_class: int = 40,
    test_per_class: int | None = None,
    size: int = 28,
    fonts: Sequence[str | os.PathLike[str]] | None = None,
    min_fonts: int = 3,
    rotation: float = 10.0,
    scale: float = 0.1,
    shear: float = 0.2,
    translate: float = 0.06,
    noise: float = 0.05,
    min_distance: float = 0.12,
    rng: Any = 0,
    cache_dir: str | os.PathLike[str] | bool | None = None,
    progress: bool | None = None,
) -> FewShotSplits:
    r"""An image benchmark of characters rendered with matplotlib's fonts; each character is a
    class (the role Omniglot or CIFAR-FS plays in few-shot learning).

    Classes are drawn from the codepoints that at least ``min_fonts`` of ``fonts`` contain
    (:func:`glyph_classes`: thousands with the default fonts), in a seeded random order; a
    candidate is kept if it renders to a non-empty image in at least ``min_fonts`` fonts and,
    in every font it shares with an already kept class, its undistorted image differs from
    that class's by a relative distance :math:`\lVert a-b\rVert/\max(\lVert a\rVert,\lVert
    b\rVert) \ge` ``min_distance`` (this drops identical glyphs such as Latin A, Greek Alpha
    and Cyrillic A). The first ``n_source_classes`` kept are the source classes, the next
    ``n_target_classes`` the target classes, so the two sets are disjoint by construction.

    A sample of a class is its glyph in one of its fonts (uniform; the fonts supply weight and
    slant), mapped by a random affine transform :math:`q = s R_\theta \mathrm{Sh}_\kappa p + t`
    about the image centre, with :math:`\theta \sim U(\pm\,\text{rotation})` degrees,
    :math:`s \sim U(1 \pm \text{scale})`, horizontal shear :math:`\kappa \sim U(\pm\,\text{shear})`
    and :math:`t \sim U(\pm\,\text{translate} \cdot \text{size})^2` pixels, anti-aliased, plus
    :math:`N(0, \text{noise}^2)` pixel noise, clipped to [0, 1] and quantised to 8 bits. White
    ink on black, shape (N, 1, size, size), ``float32``; labels are the codepoints and
    ``class_names`` their Unicode names. The last ``test_per_class`` (default
    ``per_class // 5``) samples of each source class form ``source_test``.

    Deterministic: a class's samples depend only on the seed, the codepoint and the parameters
    (and on the FreeType and matplotlib versions, which are part of the cache key). The arrays
    are cached as ``glyphs-<hash>.npz`` (no pickles, written atomically) in ``cache_dir``
    (default :func:`default_cache_dir`/glyphs; ``False`` disables the cache); a later call
    with the same parameters loads them. ``rng`` is an int seed or a Generator (advanced by
    one draw).

    >>> s = glyphs(n_source_classes=3, n_target_classes=2, per_class=5, test_per_class=1,
    ...            size=16, cache_dir=False)
    >>> s.source_train.x.shape, s.source_test.x.shape, s.target.x.shape, s.target.x.dtype
    ((12, 1, 16, 16), (3, 1, 16, 16), (10, 1, 16, 16), dtype('float32'))
    >>> set(s.source_classes.tolist()).isdisjoint(s.target_classes.tolist())
    True
    """
    n_src = check_positive_int(n_source_classes, "n_source_classes")
    n_tgt = check_positive_int(n_target_classes, "n_target_classes")
    per_class = check_positive_int(per_class, "per_class", minimum=2)
    n_test = _check_test_per_class(test_per_class, per_class)
    size = check_positive_int(size, "size", minimum=8)
    min_fonts = check_positive_int(min_fonts, "min_fonts")
    params = dict(
        n_source_classes=n_src, n_target_classes=n_tgt, per_class=per_class,
        test_per_class=n_test, size=size, min_fonts=min_fonts,
        rotation=_check_float(rotation, "rotation", 0.0, 180.0),
        scale=_check_float(scale, "scale", 0.0, 1.0),
        shear=_check_float(shear, "shear", 0.0, 2.0),
        translate=_check_float(translate, "translate", 0.0, 0.5),
        noise=_check_float(noise, "noise", 0.0),
        min_distance=_check_float(min_distance, "min_distance", 0.0, 1.0),
    )
    paths = _resolve_fonts(fonts)
    seed = _resolve_seed(rng)
    import matplotlib

    key = dict(
        format=_GLYPH_FORMAT, seed=seed, params=params,
        fonts=[[Path(p).name, os.path.getsize(p)] for p in paths],
        matplotlib=matplotlib.__version__, freetype=_ft2font().__freetype_version__,
    )
    key_json = json.dumps(key, sort_keys=True)
    meta = {"name": "glyphs", "seed": seed, "params": params,
            "fonts": [Path(p).name for p in paths]}

    cache_file = None
    if cache_dir is not False:
        folder = (default_cache_dir() / "glyphs") if cache_dir in (None, True) else Path(cache_dir)
        digest = hashlib.sha256(key_json.encode()).hexdigest()[:24]
        cache_file = folder / f"glyphs-{digest}.npz"
        arrays = _load_cached(cache_file, key_json)
        if arrays is None:
            arrays = _render_glyphs(paths, params, seed, progress)
            _save_cached(cache_file, key_json, arrays)
        meta["cache_file"] = str(cache_file)
    else:
        arrays = _render_glyphs(paths, params, seed, progress)

    classes = np.concatenate([arrays["y_source"], arrays["y_target"]])
    names = {int(c): unicodedata.name(chr(int(c)), f"U+{int(c):04X}") for c in np.unique(classes)}
    images = {k: arrays[f"x_{k}"][:, None].astype(np.float32) / np.float32(255)
              for k in ("source", "target")}
    source_train, source_test = _split_per_class(images["source"], arrays["y_source"], n_test,
                                                 names)
    target = ArrayDataset(images["target"], arrays["y_target"], names)
    return FewShotSplits(source_train, source_test, target, meta=meta)


def _render_glyphs(
    paths: Sequence[str], params: Mapping[str, Any], seed: int, progress: bool | None
) -> dict[str, np.ndarray]:
    """uint8 images (n, size, size) and labels of the source and target classes, class by
    class in codepoint order (see :func:`glyphs`)."""
    from tqdm.auto import tqdm

    size, min_fonts = params["size"], params["min_fonts"]
    n_src, n_tgt = params["n_source_classes"], params["n_target_classes"]
    need = n_src + n_tgt
    coverage = [_font_coverage(p) for p in paths]
    pool = glyph_classes(paths, min_fonts=min_fonts)
    if pool.size < need:
        raise NCBoundsError(
            f"n_source_classes + n_target_classes: expected at most {pool.size} classes "
            f"(characters in >= {min_fonts} of the {len(paths)} fonts), got {need}"
        )
    renderer = _GlyphRenderer(paths, _OVERSAMPLE * size)
    banks = [_Bank(size, params["min_distance"]) for _ in paths]
    kept: list[tuple[int, np.ndarray]] = []  # (codepoint, its uint8 images)
    order = np.random.default_rng([seed, 0]).permutation(pool.size)
    bar = tqdm(total=need, desc="rendering glyph classes", leave=False,
               disable=None if progress is None else not progress)  # None: only on a TTY
    for i in order:
        cp = int(pool[i])
        fonts_codes = [(fi, cov[cp]) for fi, cov in enumerate(coverage) if cp in cov]
        tmpl, centres, rendered_fonts = renderer.templates(fonts_codes)
        n = len(rendered_fonts)
        if n < min_fonts:
            continue
        eye = np.broadcast_to(np.eye(2), (n, 2, 2))
        canon = _warp(tmpl, centres, np.arange(n), eye, np.zeros((n, 2)), size).astype(np.float64)
        if any(banks[fi].near(img) for fi, img in zip(rendered_fonts, canon)):
            continue
        for fi, img in zip(rendered_fonts, canon):
            banks[fi].add(img)
        kept.append((cp, _sample_class(cp, tmpl, centres, params, seed)))
        bar.update()
        if len(kept) == need:
            break
    bar.close()
    if len(kept) < need:
        raise NCBoundsError(
            f"n_source_classes + n_target_classes: expected at most {len(kept)} classes "
            f"(distinct, non-empty glyphs in >= {min_fonts} fonts), got {need}"
        )
    out = {}
    for part, chosen in (("source", kept[:n_src]), ("target", kept[n_src:])):
        chosen = sorted(chosen, key=lambda t: t[0])
        out[f"x_{part}"] = np.concatenate([images for _, images in chosen])
        out[f"y_{part}"] = np.repeat([cp for cp, _ in chosen], params["per_class"]).astype(np.int64)
    return out


def _sample_class(
    cp: int, templates: np.ndarray, centres: np.ndarray, params: Mapping[str, Any], seed: int
) -> np.ndarray:
    """``per_class`` uint8 images (n, size, size) of one class; drawn from (seed, codepoint)."""
    g = np.random.default_rng([seed, 1, cp])
    n, size = params["per_class"], params["size"]
    which = g.integers(len(templates), size=n)
    theta = np.deg2rad(g.uniform(-params["rotation"], params["rotation"], n))
    s = g.uniform(1 - params["scale"], 1 + params["scale"], n)
    kappa = g.uniform(-params["shear"], params["shear"], n)
    shift = g.uniform(-params["translate"], params["translate"], (n, 2)) * size
    cos, sin = np.cos(theta), np.sin(theta)
    # (row, col) coordinates, forward map s R Sh: horizontal shear (col += kappa * row), then
    # rotation, then scale; _warp reads the template through its inverse
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    sh = np.zeros((n, 2, 2))
    sh[:, 0, 0] = sh[:, 1, 1] = 1.0
    sh[:, 1, 0] = kappa
    forward = s[:, None, None] * (rot @ sh)
    images = _warp(templates, centres, which, np.linalg.inv(forward), shift, size)
    images += params["noise"] * g.standard_normal(images.shape).astype(np.float32)
    return np.rint(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)


def _load_cached(path: Path, key_json: str) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key_json:
                raise ValueError("the stored parameters differ from the requested ones")
            return {k: f[k] for k in f.files if k != "key"}
    except Exception as exc:  # a truncated or foreign file: render again and overwrite it
        warnings.warn(
            f"ignoring the unreadable glyph cache file {path} ({exc}); rendering again",
            NCBoundsWarning, stacklevel=3,
        )
        return None


def _save_cached(path: Path, key_json: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically (a temporary file in the folder, then rename).

    The cache only saves time: a folder that cannot be written gives a warning, not an error.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".glyphs-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.array(key_json), **arrays)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        warnings.warn(f"cannot write the glyph cache {path} ({exc})", NCBoundsWarning,
                      stacklevel=3)


# --------------------------------------------------------------------------------------------
# Safe reading of pickles and tar archives
# --------------------------------------------------------------------------------------------


def _checked_dtype(dtype: Any, where: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.hasobject:
        raise NCBoundsError(f"{where}: refusing a numpy array of Python objects (dtype {dt})")
    return dt


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise NCBoundsError(f"pickle: refusing to build an array of type {describe(subtype)}")
    return np.ndarray.__new__(np.ndarray, shape, _checked_dtype(dtype, "pickle"))


def _safe_dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    dt = np.dtype(obj, align=align, copy=copy)
    _checked_dtype(dt, "pickle")
    return dt


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    dt = _checked_dtype(dtype, "pickle")
    return np.frombuffer(buf, dtype=dt).reshape(shape, order=order)


def _safe_scalar(dtype: Any, data: Any = None) -> Any:
    dt = _checked_dtype(dtype, "pickle")
    if isinstance(data, str):  # a Python 2 str read with encoding="latin1"
        data = data.encode("latin1")
    if not isinstance(data, bytes):
        raise NCBoundsError(f"pickle: expected the bytes of a numpy scalar, got {describe(data)}")
    return np.frombuffer(data, dtype=dt, count=1)[0]


def _safe_encode(obj: Any, encoding: str = "utf-8") -> bytes:
    # protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1")
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise NCBoundsError("pickle: refusing _codecs.encode other than str -> latin1 bytes")
    return obj.encode("latin1")


_NUMPY_CORE = ("numpy.core", "numpy._core")
_PICKLE_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _safe_encode,
    **{(f"{core}.multiarray", "_reconstruct"): _safe_reconstruct for core in _NUMPY_CORE},
    **{(f"{core}.multiarray", "scalar"): _safe_scalar for core in _NUMPY_CORE},
    **{(f"{core}.numeric", "_frombuffer"): _safe_frombuffer for core in _NUMPY_CORE},
}
_PLAIN = (dict, list, tuple, str, bytes, bytearray, int, float, complex, bool, type(None))


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose only callables are numpy's array/dtype reconstruction helpers."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise NCBoundsError(
                f"pickle: refusing to load {module}.{name}; only dicts, lists, tuples, str, "
                "bytes, numbers and numpy arrays are admitted"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise NCBoundsError("pickle: refusing persistent references")


def safe_unpickle(file: str | os.PathLike[str] | BinaryIO, *, encoding: str = "latin1") -> Any:
    """Load a pickle that may hold only plain containers and numpy arrays.

    Only dicts, lists, tuples, str, bytes, numbers, None and numpy arrays and scalars (not of
    object dtype) are admitted; any other global (a class, a function such as ``os.system``)
    raises :class:`NCBoundsError` before it is called, so a malicious file cannot run code.
    ``encoding="latin1"`` reads the Python 2 pickles of the CIFAR and mini-ImageNet archives.

    >>> import pickle
    >>> safe_unpickle(io.BytesIO(pickle.dumps({"a": np.arange(3), "b": [1, "x"]})))
    {'a': array([0, 1, 2]), 'b': [1, 'x']}
    >>> safe_unpickle(io.BytesIO(pickle.dumps(print)))
    Traceback (most recent call last):
    ...
    ncbounds._errors.NCBoundsError: pickle: refusing to load builtins.print; ...
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            return safe_unpickle(f, encoding=encoding)
    try:
        obj = _RestrictedUnpickler(file, encoding=encoding).load()
    except NCBoundsError:
        raise
    except Exception as exc:
        raise NCBoundsError(f"pickle: expected a readable pickle, got an error: {exc}") from None
    stack = [obj]
    while stack:  # belt and braces: every object reached must be plain
        o = stack.pop()
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
        elif isinstance(o, (np.ndarray, np.generic)):
            _checked_dtype(o.dtype, "pickle")
        elif not isinstance(o, _PLAIN):
            raise NCBoundsError(f"pickle: refusing an object of type {type(o).__name__}")
    return obj


def _check_tar_member(m: tarfile.TarInfo, archive: Any) -> tarfile.TarInfo:
    """``m``, after checking that it would land inside the extraction folder."""
    name = m.name.replace("\\", "/")
    bad = None
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        bad = "an absolute path"
    elif ".." in name.split("/"):
        bad = "a '..' component"
    elif m.issym() or m.islnk():
        base = posixpath.dirname(name) if m.issym() else ""
        target = posixpath.normpath(posixpath.join(base, m.linkname.replace("\\", "/")))
        if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
            bad = f"a link to {m.linkname!r} outside the folder"
    elif not (m.isfile() or m.isdir()):
        bad = "a device, FIFO or other special file"
    if bad is not None:
        raise NCBoundsError(
            f"archive {archive}: refusing member {m.name!r}: {bad}; expected regular files "
            "and folders inside the extraction folder"
        )
    return m


def safe_extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a tar archive (any compression) into ``dest`` and return ``dest``.

    The whole archive is refused (nothing is written) if any member has an absolute path, a
    ``..`` component, a symbolic or hard link pointing outside, or is a device or FIFO; the
    extraction then also uses :mod:`tarfile`'s ``data`` filter where Python provides it.

    >>> import tempfile, tarfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with tarfile.open(d / "a.tar", "w") as t:
    ...     info = tarfile.TarInfo("../evil"); t.addfile(info, io.BytesIO(b""))
    >>> safe_extract(d / "a.tar", d / "out")
    Traceback (most recent call last):
    ...
    ncbounds._errors.NCBoundsError: archive ...: refusing member '../evil': a '..' component; ...
    """
    archive = Path(archive)
    if not archive.is_file():
        raise NCBoundsError(f"archive: expected an existing tar file, got {str(archive)!r}")
    dest = Path(dest)
    try:
        with tarfile.open(archive) as tar:
            members = [_check_tar_member(m, archive) for m in tar.getmembers()]
            dest.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - Python without PEP 706 filters
                tar.extractall(dest, members=members)
    except tarfile.TarError as exc:
        raise NCBoundsError(
            f"archive: expected a readable tar file, got {archive} ({exc})"
        ) from None
    return dest


# --------------------------------------------------------------------------------------------
# CIFAR-100 based benchmarks: CIFAR-FS and FC100
# --------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: CIFAR-FS class split (Bertinetto, Henriques, Torr & Vedaldi, "Meta-learning with
#: differentiable closed-form solvers", ICLR 2019; the split files of their R2D2 code):
#: 64 train, 16 validation and 20 test classes of CIFAR-100, by fine label name.
CIFAR_FS_SPLIT: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "train": _words("""
        apple aquarium_fish bear bee bottle bowl boy bridge bus can castle caterpillar chair
        clock cloud cockroach couch cup dinosaur dolphin elephant forest girl hamster house
        kangaroo keyboard lawn_mower lion lizard lobster mountain mouse mushroom oak_tree orange
        orchid palm_tree pear pine_tree plate porcupine possum rabbit raccoon ray road seal
        shrew skunk skyscraper snake spider squirrel streetcar sunflower tank tiger train trout
        tulip turtle willow_tree wolf"""),
    "val": _words("""
        beaver beetle butterfly camel cattle crab crocodile flatfish lamp maple_tree motorcycle
        otter sea shark television tractor"""),
    "test": _words("""
        baby bed bicycle chimpanzee fox leopard man pickup_truck plain poppy rocket rose snail
        sweet_pepper table telephone wardrobe whale woman worm"""),
})

#: FC100 split (Oreshkin, Rodríguez & Lacoste, "TADAM: Task dependent adaptive metric for
#: improved few-shot learning", NeurIPS 2018): CIFAR-100 superclasses (coarse label names of
#: the archive) 12 train (60 classes), 4 validation (20), 4 test (20), chosen to minimise
#: the semantic overlap between the splits.
FC100_SPLIT: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "train": _words("""
        fish flowers food_containers fruit_and_vegetables household_electrical_devices
        household_furniture large_man-made_outdoor_things large_natural_outdoor_scenes reptiles
        trees vehicles_1 vehicles_2"""),
    "val": _words("large_carnivores large_omnivores_and_herbivores non-insect_invertebrates "
                  "small_mammals"),
    "test": _words("aquatic_mammals insects medium_mammals people"),
})

_CIFAR_DIR = "cifar-100-python"
_CIFAR_ARCHIVE = "cifar-100-python.tar.gz"
_CIFAR_FILES = ("train", "test", "meta")


def _text(v: Any) -> str:
    return v.decode("latin1") if isinstance(v, bytes) else str(v)


def _plain_keys(d: Any, where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise NCBoundsError(f"{where}: expected a pickled dict, got {type(d).__name__}")
    return {_text(k): v for k, v in d.items()}


def _contents(root: Path) -> str:
    if not root.exists():
        return "it does not exist"
    if root.is_file():
        return "it is a file that is not a tar archive"
    entries = sorted(p.name for p in root.iterdir())
    return f"it contains {entries[:8]}{' ...' if len(entries) > 8 else ''}"


def _read_cifar100(root: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The unpickled ``train``, ``test`` and ``meta`` dicts of the CIFAR-100 python version."""
    root = Path(root).expanduser()
    folder = next((d for d in (root, root / _CIFAR_DIR)
                   if d.is_dir() and all((d / f).is_file() for f in _CIFAR_FILES)), None)
    if folder is not None:
        return {f: _plain_keys(safe_unpickle(folder / f), str(folder / f)) for f in _CIFAR_FILES}
    archive = root / _CIFAR_ARCHIVE if root.is_dir() else root
    if archive.is_file() and tarfile.is_tarfile(archive):
        out = {}
        # one streaming pass; the pickles are read from memory and nothing is written to disk,
        # yet an archive with a member that extraction would refuse is refused as a whole
        with tarfile.open(archive, "r|*") as tar:
            for m in tar:
                f = posixpath.basename(_check_tar_member(m, archive).name)
                if m.isfile() and f in _CIFAR_FILES:
                    data = tar.extractfile(m).read()  # type: ignore[union-attr]
                    out[f] = _plain_keys(safe_unpickle(io.BytesIO(data)), f"{archive}:{m.name}")
        missing = [f for f in _CIFAR_FILES if f not in out]
        if missing:
            raise NCBoundsError(
                f"root: expected the archive {archive} to contain {_CIFAR_DIR}/"
                f"{{train,test,meta}}, missing {missing}"
            )
        return out
    raise NCBoundsError(
        "root: expected the CIFAR-100 python version (read locally, never downloaded): the "
        f"archive {_CIFAR_ARCHIVE}, the folder {_CIFAR_DIR}/ with files train, test and meta, "
        f"or a folder containing either; got {str(root)!r}: {_contents(root)}"
    )


def _cifar_arrays(part: Mapping[str, Any], where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8, fine and coarse labels of one CIFAR-100 part."""
    try:
        data = np.asarray(part["data"])
        fine = np.asarray(part["fine_labels"], dtype=np.int64)
        coarse = np.asarray(part["coarse_labels"], dtype=np.int64)
    except KeyError as exc:
        raise NCBoundsError(
            f"{where}: expected keys data, fine_labels and coarse_labels, missing {exc}"
        ) from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise NCBoundsError(
            f"{where}: expected data of shape (N, 3072) uint8, got {describe(data)}"
        )
    if fine.shape != (data.shape[0],) or coarse.shape != (data.shape[0],):
        raise NCBoundsError(
            f"{where}: expected {data.shape[0]} fine and coarse labels, got {fine.shape[0]} "
            f"and {coarse.shape[0]}"
        )
    # rows hold the red, green and blue 32x32 planes one after another, row-major
    return data.reshape(-1, 3, 32, 32), fine, coarse


def _to_dtype(images: np.ndarray, dtype: Any) -> np.ndarray:
    """uint8 images as they are, or as float32 in [0, 1]."""
    dt = np.dtype(dtype)
    if dt == np.uint8:
        return images
    if dt != np.float32:
        raise NCBoundsError(f"dtype: expected numpy.float32 or numpy.uint8, got {dt}")
    return np.divide(images, np.float32(255), dtype=np.float32)


def _cifar100_splits(root: Any, split: Mapping[str, Iterable[str]], level: str, name: str,
                     reference: str, dtype: Any) -> FewShotSplits:
    parts = _read_cifar100(root)
    meta = parts["meta"]
    names = [_text(n) for n in meta.get(f"{level}_label_names", [])]
    wanted = [n for v in split.values() for n in v]
    missing = sorted(set(wanted) - set(names))
    if missing:
        raise NCBoundsError(
            f"root: expected meta[{level}_label_names] of CIFAR-100 to contain the {name} "
            f"classes, missing {missing[:6]}"
        )
    x_tr, fine_tr, coarse_tr = _cifar_arrays(parts["train"], "train")
    x_te, fine_te, coarse_te = _cifar_arrays(parts["test"], "test")
    fine_names = {i: _text(n) for i, n in enumerate(meta.get("fine_label_names", []))}
    for labels in (fine_tr, fine_te):
        if labels.size and not (0 <= labels.min() and labels.max() < len(fine_names)):
            raise NCBoundsError("root: expected fine labels indexing meta[fine_label_names]")
    key_tr, key_te = (coarse_tr, coarse_te) if level == "coarse" else (fine_tr, fine_te)

    def select(which: str, use_train: bool, use_test: bool) -> ArrayDataset:
        ids = np.array([names.index(n) for n in split[which]])
        xs, ys = [], []
        for use, x, key, fine in ((use_train, x_tr, key_tr, fine_tr),
                                  (use_test, x_te, key_te, fine_te)):
            if use:
                mask = np.isin(key, ids)
                xs.append(x[mask])
                ys.append(fine[mask])
        y = np.concatenate(ys)
        return ArrayDataset(_to_dtype(np.concatenate(xs), dtype), y,
                            {int(c): fine_names[int(c)] for c in np.unique(y)})

    return FewShotSplits(
        source_train=select("train", True, False),
        source_test=select("train", False, True),
        target=select("test", True, True),
        validation=select("val", True, True),
        meta={"name": name, "root": str(root), "split": reference,
              "source_train": "CIFAR-100 train images of the train classes",
              "source_test": "CIFAR-100 test images of the train classes"},
    )


def cifar_fs(root: str | os.PathLike[str], *, dtype: Any = np.float32) -> FewShotSplits:
    """CIFAR-FS (Bertinetto et al., ICLR 2019) from a local copy of CIFAR-100.

    ``root`` is the CIFAR-100 python archive ``cifar-100-python.tar.gz``, the folder
    extracted from it, or a folder containing either; nothing is downloaded, pickles are read
    with :func:`safe_unpickle` and the archive is checked member by member.

    Classes follow :data:`CIFAR_FS_SPLIT`: the 64 train classes are the source classes, with
    their 500 CIFAR-100 train images per class as ``source_train`` and their 100 test images
    as ``source_test``; the 20 test classes (all 600 images each) are the ``target``; the 16
    validation classes the ``validation`` part. Labels are CIFAR-100 fine label ids.
    Images (N, 3, 32, 32), ``float32`` in [0, 1] (or raw ``uint8`` with ``dtype=np.uint8``).
    """
    return _cifar100_splits(root, CIFAR_FS_SPLIT, "fine", "cifar_fs",
                            "Bertinetto et al. 2019 (CIFAR_FS_SPLIT)", dtype)


def fc100(root: str | os.PathLike[str], *, dtype: Any = np.float32) -> FewShotSplits:
    """FC100 (Oreshkin et al., NeurIPS 2018) from a local copy of CIFAR-100.

    As :func:`cifar_fs`, with the superclass split :data:`FC100_SPLIT`: source classes are
    the 60 classes of the 12 train superclasses, target the 20 classes of the 4 test
    superclasses, validation the 20 classes of the other 4.
    """
    return _cifar100_splits(root, FC100_SPLIT, "coarse", "fc100",
                            "Oreshkin et al. 2018 (FC100_SPLIT)", dtype)


# --------------------------------------------------------------------------------------------
# mini-ImageNet
# --------------------------------------------------------------------------------------------

_MINI_SPLITS = ("train", "val", "test")
_MINI_CACHE = {s: f"mini-imagenet-cache-{s}.pkl" for s in _MINI_SPLITS}
_MINI_METAOPTNET = {
    "train": "miniImageNet_category_split_train_phase_train.pickle",
    "val": "miniImageNet_category_split_val.pickle",
    "test": "miniImageNet_category_split_test.pickle",
}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _images_array(images: Any, where: str) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise NCBoundsError(f"{where}: expected images (N, H, W, 3) uint8, got {describe(images)}")
    return images


def _mini_from_cache(path: Path) -> tuple[np.ndarray, list[str]]:
    d = _plain_keys(safe_unpickle(path), str(path))
    if "image_data" not in d or "class_dict" not in d:
        raise NCBoundsError(f"{path}: expected keys image_data and class_dict, got {sorted(d)}")
    images = _images_array(d["image_data"], str(path))
    names: list[str | None] = [None] * len(images)
    for cls, idx in _plain_keys(d["class_dict"], f"{path}: class_dict").items():
        for i in np.asarray(idx, dtype=np.int64).ravel():
            if not 0 <= i < len(images) or names[i] is not None:
                raise NCBoundsError(f"{path}: class_dict index {i} is out of range or repeated")
            names[i] = cls
    if all(n is not None for n in names):
        return images, names  # type: ignore[return-value]
    keep = [i for i, n in enumerate(names) if n is not None]
    return images[keep], [names[i] for i in keep]  # type: ignore[misc]


def _mini_from_metaoptnet(path: Path, split: str) -> tuple[np.ndarray, list[str]]:
    d = _plain_keys(safe_unpickle(path), str(path))
    if "data" not in d or "labels" not in d:
        raise NCBoundsError(f"{path}: expected keys data and labels, got {sorted(d)}")
    images = _images_array(d["data"], str(path))
    labels = np.asarray(d["labels"], dtype=np.int64)
    if labels.shape != (len(images),):
        raise NCBoundsError(f"{path}: expected {len(images)} labels, got {labels.shape[0]}")
    catname2label = _plain_keys(d.get("catname2label", {}), str(path))
    inverse = {int(v): _text(k) for k, v in catname2label.items()}
    return images, [inverse.get(int(v), f"{split}:{int(v)}") for v in labels]


def _mini_from_folder(folder: Path, image_size: int | None) -> tuple[np.ndarray, list[str]]:
    from PIL import Image  # lazily: Pillow ships with matplotlib
    from tqdm.auto import tqdm

    images, names = [], []
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    for cls in tqdm(classes, desc=f"reading {folder.name}", leave=False, disable=None):
        for f in sorted(p for p in cls.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES):
            with Image.open(f) as im:
                im = im.convert("RGB")
                if image_size is not None and im.size != (image_size, image_size):
                    im = im.resize((image_size, image_size), Image.BILINEAR)
                images.append(np.asarray(im, dtype=np.uint8))
            names.append(cls.name)
    if not images:
        raise NCBoundsError(f"{folder}: expected class folders with image files, found none")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise NCBoundsError(
            f"{folder}: expected images of one size, got {sorted(shapes)[:3]}; pass image_size "
            "to resize them"
        )
    return np.stack(images), names


def _resized(images: np.ndarray, image_size: int | None) -> np.ndarray:
    if image_size is None or images.shape[1:3] == (image_size, image_size):
        return images
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((image_size, image_size),
                                                          Image.BILINEAR)) for im in images])


def mini_imagenet(
    root: str | os.PathLike[str],
    *,
    test_fraction: float = 1 / 6,
    image_size: int | None = None,
    dtype: Any = np.float32,
    rng: Any = 0,
) -> FewShotSplits:
    """mini-ImageNet (Vinyals et al. 2016, split of Ravi & Larochelle 2017) from local files.

    ``root`` holds one of (checked in this order; nothing is downloaded, pickles are read with
    :func:`safe_unpickle`):

    - the pickle caches ``mini-imagenet-cache-{train,val,test}.pkl``, dicts with
      ``image_data`` (N, H, W, 3) uint8 and ``class_dict`` {class name: image indices};
    - the MetaOptNet pickles ``miniImageNet_category_split_{train_phase_train,val,test}.pickle``,
      dicts with ``data`` (N, H, W, 3) uint8, ``labels`` and optionally ``catname2label``;
    - an image folder ``root/{train,val,test}/<class>/*.jpg`` (or .png), read with Pillow.

    The train classes are the source classes; of each, a seeded random ``test_fraction`` of
    the images (default 1/6, i.e. 100 of 600) is held out as ``source_test``. The test classes
    are the ``target``, the val classes the ``validation``. Class ids are 0.. over the sorted
    class names of train, then val, then test; ``class_names`` gives the names (WordNet ids).
    ``image_size`` resizes (bilinear) to a square side; images (N, 3, H, W), ``float32`` in
    [0, 1] (or ``uint8``).
    """
    root = Path(root).expanduser()
    frac = _check_float(test_fraction, "test_fraction", 0.0, 1.0)
    if image_size is not None:
        image_size = check_positive_int(image_size, "image_size")
    seed = _resolve_seed(rng)
    if root.is_dir() and all((root / f).is_file() for f in _MINI_CACHE.values()):
        fmt, raw = "pickle cache", {s: _mini_from_cache(root / f) for s, f in _MINI_CACHE.items()}
    elif root.is_dir() and all((root / f).is_file() for f in _MINI_METAOPTNET.values()):
        fmt, raw = "MetaOptNet pickles", {
            s: _mini_from_metaoptnet(root / f, s) for s, f in _MINI_METAOPTNET.items()}
    elif root.is_dir() and all((root / s).is_dir() for s in _MINI_SPLITS):
        fmt = "image folder"
        raw = {s: _mini_from_folder(root / s, image_size) for s in _MINI_SPLITS}
    else:
        raise NCBoundsError(
            "root: expected mini-ImageNet as one of: the files "
            f"{', '.join(_MINI_CACHE.values())}; the files {', '.join(_MINI_METAOPTNET.values())}; "
            f"the folders train/, val/, test/ of class folders of images; got {str(root)!r}: "
            f"{_contents(root)}"
        )
    ids: dict[str, int] = {}
    for split in _MINI_SPLITS:
        for n in sorted(set(raw[split][1])):
            if n in ids:
                raise NCBoundsError(f"root: class {n!r} appears in more than one split")
            ids[n] = len(ids)
    class_names = {i: n for n, i in ids.items()}

    def part(split: str) -> ArrayDataset:
        images, names = raw[split]
        y = np.array([ids[n] for n in names], dtype=np.int64)
        x = np.ascontiguousarray(_resized(images, image_size).transpose(0, 3, 1, 2))
        return ArrayDataset(_to_dtype(x, dtype), y, class_names)

    source = part("train")
    gen = np.random.default_rng(seed)
    test = np.zeros(len(source), dtype=bool)
    for c in source.classes:
        idx = np.flatnonzero(source.y == c)
        test[gen.permutation(idx)[: int(round(frac * idx.size))]] = True
    return FewShotSplits(
        source_train=source.subset(~test), source_test=source.subset(test),
        target=part("test"), validation=part("val"),
        meta={"name": "mini_imagenet", "root": str(root), "format": fmt, "seed": seed,
              "test_fraction": frac, "image_size": image_size},
    )
