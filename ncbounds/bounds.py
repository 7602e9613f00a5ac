"""Every statement of THEORY.md (T1–T4) as a checkable :class:`Bound`.

Galanti, György & Hutter, "On the Role of Neural Collapse in Transfer Learning", ICLR 2022
(arXiv 2112.15121); the explicit constants are those of THEORY.md.

A :class:`Bound` holds its sympy expression, which is the *only* place its formula is
written: the numeric evaluator (generated once with :func:`sympy.lambdify`), the LaTeX form,
the exact :meth:`Bound.symbolic` value and the text of :meth:`Bound.describe` all derive from
it. Keyword names are shared across bounds (``cdnv``, ``shots``, ``ways``, ``dim``,
``delta``, ...), and every evaluation validates its keywords by name.

>>> from ncbounds import bounds
>>> bounds.nearest_mean(cdnv=0.01, shots=5)          # 16 * 0.01 * (1 + 2/5)
0.224
>>> bounds.nearest_mean(cdnv=[0.01, 0.02], shots=5, ways=3)
array([0.448, 0.896])
>>> list(bounds.registry())[:3]
['nearest_mean', 'nearest_mean_unequal', 'nearest_mean_anisotropic']
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import scipy.special
import sympy as sp

from ._errors import NCBoundsError, NCBoundsWarning
from ._validation import check_features, check_probability, describe, raise_nonfinite, to_numpy

__all__ = [
    "Bound",
    "registry",
    "nearest_mean",
    "nearest_mean_unequal",
    "nearest_mean_anisotropic",
    "known_means",
    "spherical_as_stated",
    "spherical",
    "eps1_mcdiarmid",
    "eps2_hoeffding",
    "eps1_rademacher",
    "new_samples",
    "new_samples_rademacher",
    "new_samples_from_samples",
    "NewSamplesResult",
    "new_classes",
    "new_classes_rate",
    "cube_margin",
]

PAPER = (
    "Galanti, György & Hutter, 'On the Role of Neural Collapse in Transfer Learning', "
    "ICLR 2022 (arXiv 2112.15121)"
)
KINDS = ("probability", "cdnv", "distance", "rate")


# ---------------------------------------------------------------------------------------
# Keywords: one sympy symbol, one meaning and one validation rule per shared keyword name.
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Keyword:
    name: str
    symbol: sp.Symbol
    meaning: str
    rule: str  # nonneg | nonneg_inf | positive | count | probability | sides
    minimum: int = 1

    def expected(self) -> str:
        return {
            "nonneg": "finite numbers >= 0",
            "nonneg_inf": "numbers >= 0 (+inf allowed)",
            "positive": "finite numbers > 0",
            "count": f"whole numbers >= {self.minimum}",
            "probability": "numbers in (0, 1)",
            "sides": "1 (one-sided) or 2 (two-sided)",
        }[self.rule]

    def violations(self, arr: np.ndarray) -> np.ndarray:
        """Boolean mask of the entries of ``arr`` (float64, no NaN) that break the rule."""
        finite = np.isfinite(arr)
        if self.rule == "nonneg":
            return ~finite | (arr < 0)
        if self.rule == "nonneg_inf":
            return arr < 0
        if self.rule == "positive":
            return ~finite | (arr <= 0)
        if self.rule == "count":
            return ~finite | (arr < self.minimum) | (arr != np.floor(np.where(finite, arr, 0)))
        if self.rule == "probability":
            return ~((arr > 0) & (arr < 1))
        return ~((arr == 1) | (arr == 2))  # sides


def _keyword(name: str, latex: str, meaning: str, rule: str, minimum: int = 1) -> _Keyword:
    if rule == "count" or rule == "sides":
        symbol = sp.Symbol(latex, positive=True, integer=True)
    elif rule in ("positive", "probability"):
        symbol = sp.Symbol(latex, positive=True)
    else:
        symbol = sp.Symbol(latex, nonnegative=True)
    return _Keyword(name, symbol, meaning, rule, minimum)


_KEYWORDS: dict[str, _Keyword] = {
    kw.name: kw
    for kw in [
        _keyword("cdnv", "V", "CDNV V_f(P_1, P_2) = (v_1 + v_2) / (2 d^2) of the class laws "
                 "(T0); with ways > 2 the average over unordered pairs of classes", "nonneg_inf"),
        _keyword("shots", "n", "support samples per class (n-shot)", "count"),
        _keyword("ways", "k", "number of classes in the few-shot task (k-way)", "count", 2),
        _keyword("dim", "p", "feature dimension p", "count"),
        _keyword("var1", "v_1", "Var_f(P_1) = tr Sigma_f(P_1), total variance of class 1",
                 "nonneg"),
        _keyword("var2", "v_2", "Var_f(P_2) = tr Sigma_f(P_2), total variance of class 2",
                 "nonneg"),
        _keyword("lambda1", "lambda_1", "largest eigenvalue of Sigma_f(P_1)", "nonneg"),
        _keyword("lambda2", "lambda_2", "largest eigenvalue of Sigma_f(P_2)", "nonneg"),
        _keyword("distance", "d", "distance between the class means ||mu_1 - mu_2||",
                 "positive"),
        _keyword("shots1", "n_1", "support samples of class 1", "count"),
        _keyword("shots2", "n_2", "support samples of class 2", "count"),
        _keyword("cdnv_directional", "Vtilde_ij", "directional CDNV u^T Sigma_i u / d_ij^2, u the "
                 "unit vector from mu_i to mu_j (T0)", "nonneg_inf"),
        _keyword("var_i", "vhat_i", "Var_f(S_i), empirical variance of class i (ddof = 0)",
                 "nonneg"),
        _keyword("var_j", "vhat_j", "Var_f(S_j), empirical variance of class j (ddof = 0)",
                 "nonneg"),
        _keyword("mean_distance", "b", "b = ||mu_f(S_i) - mu_f(S_j)||, distance of the "
                 "empirical means", "nonneg"),
        _keyword("eps1_i", "epsilon_1,i", "eps1_i >= ||mu_f(P_i) - mu_f(S_i)||", "nonneg"),
        _keyword("eps1_j", "epsilon_1,j", "eps1_j >= ||mu_f(P_j) - mu_f(S_j)||", "nonneg"),
        _keyword("eps2_i", "epsilon_2,i", "eps2_i >= |E_{P_i} ||f||^2 - Avg_{S_i} ||f||^2|",
                 "nonneg"),
        _keyword("eps2_j", "epsilon_2,j", "eps2_j >= |E_{P_j} ||f||^2 - Avg_{S_j} ||f||^2|",
                 "nonneg"),
        _keyword("mean_norm_i", r"\|\hat{\mu}_i\|", "||mu_f(S_i)||, norm of the empirical "
                 "mean of class i (relative to the chosen centre c_0)", "nonneg"),
        _keyword("mean_norm_j", r"\|\hat{\mu}_j\|", "||mu_f(S_j)||, norm of the empirical "
                 "mean of class j (relative to the chosen centre c_0)", "nonneg"),
        _keyword("radius", "B", "B >= sup_x ||f(x) - c_0||", "positive"),
        _keyword("samples", "m", "samples per class", "count"),
        _keyword("delta", "delta", "failure probability delta", "probability"),
        _keyword("rademacher", r"\mathfrak{R}", "Rademacher term supplied by the caller",
                 "nonneg"),
        _keyword("cdnv_source", "Ghat", "Ghat = Avg_{i != j} V_f(P~_i, P~_j), average CDNV of "
                 "the source classes", "nonneg_inf"),
        _keyword("cdnv_max", "M", "M >= sup V_f(P, P') over distinct P, P' in the support "
                 "(M <= s_max / Delta^2)", "nonneg_inf"),
        _keyword("sources", "l", "number l of source classes", "count", 2),
        _keyword("sides", "sigma", "1 for the one-sided bound, 2 for the two-sided one",
                 "sides"),
        _keyword("constant", "C", "the constant hidden by the slides' '<~' (caller's choice)",
                 "positive"),
        _keyword("var_max", "s_max", "sup_{f, P} Var_f(P)", "nonneg"),
        _keyword("margin", "Delta", "Delta = min distance between distinct class means",
                 "positive"),
        _keyword("side", "s", "side length s of the cube holding the class means", "positive"),
        _keyword("classes", "N", "number N of classes (points) in the cube", "count", 2),
    ]
}


def _syms(names: str) -> tuple[sp.Symbol, ...]:
    return tuple(_KEYWORDS[name].symbol for name in names.split())


def _to_sympy(value: Any) -> sp.Basic:
    """An exact sympy number for a validated scalar (floats exactly, as binary rationals)."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, (numbers.Integral, np.integer)):
        return sp.Integer(int(value))
    v = float(value)
    if math.isinf(v):
        return sp.oo if v > 0 else -sp.oo
    return sp.Rational(v)


# ---------------------------------------------------------------------------------------
# The Bound class.
# ---------------------------------------------------------------------------------------
class Bound:
    """One statement of THEORY.md as an evaluable, documented object.

    Attributes: ``name`` (registry key), ``theory_item`` ("T1" ... "T4"), ``reference``,
    ``statement`` (one line in words), ``expr`` (the sympy expression, the single source of
    the formula), ``symbols`` (keyword -> sympy symbol), ``meaning`` (keyword -> text),
    ``assumptions``, ``kind`` ("probability", "cdnv", "distance" or "rate"), ``valid``
    (False only for a statement known to be false in general), ``certified`` (False for a
    rate with hidden constants), ``defaults``.

    Calling the object evaluates the uncapped bound: scalars give a float, numpy arrays
    broadcast and give an array. :meth:`capped` caps probabilities at 1, :meth:`symbolic`
    gives the exact sympy value.

    Constructing one: ``expr`` must use exactly the symbols of ``keywords`` (shared keyword
    names, e.g. ``nearest_mean.symbols["cdnv"]``); ``relations`` lists pairs (a, b) that must
    satisfy a <= b; ``stable_log_form`` evaluates exp(log(expr)) with log Gamma (for
    dimension-dependent volumes).

    >>> V = nearest_mean.symbols["cdnv"]
    >>> b = Bound("toy", theory_item="T1", statement="twice the CDNV", kind="cdnv",
    ...           expr=2 * V, keywords=("cdnv",), assumptions=())
    >>> b(cdnv=0.25), b.latex, b.symbolic(cdnv=0.25)
    (0.5, '2 V', 1/2)
    """

    def __init__(
        self,
        name: str,
        *,
        theory_item: str,
        statement: str,
        expr: sp.Expr,
        keywords: tuple[str, ...],
        assumptions: tuple[str, ...],
        kind: str,
        valid: bool = True,
        certified: bool = True,
        defaults: dict[str, Any] | None = None,
        meaning: dict[str, str] | None = None,
        relations: tuple[tuple[str, str], ...] = (),
        stable_log_form: bool = False,
        doc: str = "",
    ) -> None:
        if kind not in KINDS:
            raise NCBoundsError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        unknown = [k for k in (*keywords, *(defaults or {})) if k not in _KEYWORDS]
        if unknown or not set(defaults or {}) <= set(keywords):
            raise NCBoundsError(
                f"keywords: expected shared keyword names ({', '.join(_KEYWORDS)}) with "
                f"defaults among them, got keywords {list(keywords)}, defaults "
                f"{list(defaults or {})}"
            )
        self.name = name
        self.theory_item = theory_item
        self.reference = f"{PAPER}; THEORY.md item {theory_item}"
        self.statement = statement
        self.expr = expr
        self.symbols: dict[str, sp.Symbol] = {k: _KEYWORDS[k].symbol for k in keywords}
        self.meaning: dict[str, str] = {k: _KEYWORDS[k].meaning for k in keywords}
        self.meaning.update(meaning or {})
        self.assumptions = tuple(assumptions)
        self.kind = kind
        self.valid = valid
        self.certified = certified
        self.defaults = dict(defaults or {})
        self._relations = relations
        stray = expr.free_symbols - set(self.symbols.values())
        unused = set(self.symbols.values()) - expr.free_symbols
        if stray or unused:
            raise NCBoundsError(
                f"expr: expected exactly the symbols of the keywords, got stray symbols "
                f"{sorted(map(str, stray))} and unused keyword symbols {sorted(map(str, unused))}"
            )
        # log(1/delta) -> -log(delta), log(2/delta) -> log 2 - log(delta): no rounding of
        # 1/delta before the log (which loses all digits of ln(1/delta) as delta -> 1).
        numeric, modules = sp.expand_log(expr, force=True), ["scipy", "numpy"]
        if stable_log_form:
            # The same formula evaluated as exp(log(...)) with log Gamma (scipy's gammaln) in
            # place of log(Gamma(.)), so that pi^(p/2) and Gamma(p/2 + 1) cannot overflow.
            # An undefined function keeps sympy from rewriting Gamma of integer arguments.
            log_gamma = sp.Function("_log_gamma")
            logged = sp.expand_log(
                sp.log(expr.replace(sp.gamma, lambda a: sp.exp(log_gamma(a)))), force=True
            )
            numeric = sp.exp(logged)
            modules = [{"_log_gamma": scipy.special.gammaln}, *modules]
        self._numeric_expr = numeric
        self._func: Callable[..., Any] = sp.lambdify(
            list(self.symbols.values()), numeric, modules=modules
        )
        self._inf_limits: dict[str, Callable[..., Any]] = {}
        self.__doc__ = doc or self.statement
        self.__signature__ = inspect.Signature(
            [
                inspect.Parameter(
                    k,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=self.defaults.get(k, inspect.Parameter.empty),
                )
                for k in self.symbols
            ]
        )

    # -- introspection -------------------------------------------------------------------
    @property
    def keywords(self) -> tuple[str, ...]:
        """The accepted keyword names, in signature order."""
        return tuple(self.symbols)

    @property
    def latex(self) -> str:
        """The LaTeX form of the expression (from sympy)."""
        return sp.latex(self.expr)

    def __repr__(self) -> str:
        flags = "" if self.valid else ", NOT VALID IN GENERAL"
        flags += "" if self.certified else ", rate (not certified)"
        return f"<Bound {self.name} ({self.theory_item}{flags}): {self.statement}>"

    def describe(self) -> str:
        """A multi-line description: name, item, statement, LaTeX, symbols, assumptions."""
        lines = [f"{self.name}  [{self.theory_item}, {self.kind}]"]
        if not self.valid:
            lines.append("  WARNING: not valid in general (see THEORY.md and the docstring)")
        if not self.certified:
            lines.append("  NOTE: a rate with hidden constants, not a certified bound")
        lines += [f"  {self.statement}", f"  formula: {self.latex}", "  symbols:"]
        for k, sym in self.symbols.items():
            default = f" (default {self.defaults[k]})" if k in self.defaults else ""
            lines.append(f"    {k} = {sp.latex(sym)}: {self.meaning[k]}{default}")
        lines.append("  assumptions:")
        lines += [f"    - {a}" for a in self.assumptions]
        lines.append(f"  reference: {self.reference}")
        return "\n".join(lines)

    # -- keyword binding and validation --------------------------------------------------
    def _complain(self, what: str, names: list[str]) -> NCBoundsError:
        return NCBoundsError(
            f"{self.name}: {what} keyword(s) {', '.join(names)}; "
            f"accepted: {', '.join(self.keywords)}"
        )

    def _merge(self, kwargs: dict[str, Any], *, require_all: bool) -> dict[str, Any]:
        unknown = [k for k in kwargs if k not in self.symbols]
        if unknown:
            raise self._complain("unknown", unknown)
        merged = {**self.defaults, **kwargs}
        missing = [k for k in self.symbols if k not in merged]
        if require_all and missing:
            raise self._complain("missing", missing)
        return merged

    def _check_value(self, name: str, value: Any) -> np.ndarray:
        kw = _KEYWORDS[name]
        try:
            arr = to_numpy(value)
        except Exception:  # pragma: no cover - exotic inputs
            arr = np.asarray(value, dtype=object)
        if arr.dtype.kind not in "iuf":
            raise NCBoundsError(
                f"{self.name}: {name}: expected {kw.expected()}, got {describe(value)}"
            )
        arr = arr.astype(np.float64, copy=False)
        bad = np.isnan(arr) | kw.violations(arr)
        if bad.any():
            where = "" if arr.ndim == 0 else f" at index {tuple(int(i) for i in np.argwhere(bad)[0])}"
            raise NCBoundsError(
                f"{self.name}: {name}: expected {kw.expected()}, got {float(arr[bad].flat[0])!r}{where}"
            )
        return arr

    def _check_relations(self, values: dict[str, Any]) -> None:
        for small, large in self._relations:
            if small in values and large in values:
                a, b = values[small], values[large]
                if isinstance(a, sp.Basic) or isinstance(b, sp.Basic):
                    continue
                if np.any(np.asarray(a, dtype=float) > np.asarray(b, dtype=float)):
                    raise NCBoundsError(
                        f"{self.name}: expected {small} <= {large}, got {small}={describe(a)} "
                        f"and {large}={describe(b)}"
                    )

    def _arrays(self, kwargs: dict[str, Any]) -> list[np.ndarray]:
        merged = self._merge(kwargs, require_all=True)
        arrays = {k: self._check_value(k, merged[k]) for k in self.symbols}
        self._check_relations(arrays)
        return [arrays[k] for k in self.symbols]

    # -- evaluation ----------------------------------------------------------------------
    def __call__(self, **kwargs: Any) -> float | np.ndarray:
        """The uncapped value (float for scalar inputs, broadcast ndarray otherwise)."""
        values = self._arrays(kwargs)
        try:
            shape = np.broadcast_shapes(*(v.shape for v in values))
        except ValueError:
            shapes = ", ".join(f"{k}: {v.shape}" for k, v in zip(self.symbols, values))
            raise NCBoundsError(f"{self.name}: the keyword shapes do not broadcast ({shapes})")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = np.asarray(self._func(*values), dtype=np.float64)
            out = np.broadcast_to(out, shape).copy()
            self._resolve_infinities(out, values)
        return float(out) if out.ndim == 0 else out

    def _resolve_infinities(self, out: np.ndarray, values: list[np.ndarray]) -> None:
        """Replace NaN produced by an infinite CDNV (inf/inf) by the limit of the expression."""
        nan = np.isnan(out)
        if not nan.any():
            return
        for i, (name, arr) in enumerate(zip(self.symbols, values)):
            if _KEYWORDS[name].rule != "nonneg_inf":
                continue
            mask = nan & np.broadcast_to(np.isposinf(arr), out.shape)
            if not mask.any():
                continue
            if name not in self._inf_limits:
                limit = sp.limit(self.expr, self.symbols[name], sp.oo)
                self._inf_limits[name] = sp.lambdify(
                    list(self.symbols.values()), limit, modules=["scipy", "numpy"]
                )
            full = np.broadcast_to(
                np.asarray(self._inf_limits[name](*values), dtype=np.float64), out.shape
            )
            out[mask] = full[mask]

    def capped(self, **kwargs: Any) -> float | np.ndarray:
        """A probability bound capped at 1 (the uncapped value is what calling gives)."""
        if self.kind != "probability":
            raise NCBoundsError(
                f"{self.name}: capped() applies to probability bounds, this one is a {self.kind}"
            )
        value = self(**kwargs)
        return min(value, 1.0) if isinstance(value, float) else np.minimum(value, 1.0)

    def symbolic(self, **kwargs: Any) -> sp.Expr:
        """The exact sympy value; keywords left out stay symbolic (defaults are applied).

        Numbers are substituted exactly (floats as their binary rational value); sympy
        expressions are substituted as they are.
        """
        merged = self._merge(kwargs, require_all=False)
        subs: dict[sp.Symbol, sp.Basic] = {}
        infinite: list[sp.Symbol] = []
        for k, v in merged.items():
            if not isinstance(v, sp.Basic):
                arr = self._check_value(k, v)
                if arr.ndim != 0:
                    raise NCBoundsError(f"{self.name}: {k}: symbolic() takes scalars, "
                                        f"got {describe(v)}")
                v = _to_sympy(v)
            if v == sp.oo:  # an infinite CDNV: the limit, not oo/oo
                infinite.append(self.symbols[k])
            else:
                subs[self.symbols[k]] = v
        self._check_relations(merged)
        value = self.expr.subs(subs)
        for sym in infinite:
            value = sp.limit(value, sym, sp.oo)
        return value


# ---------------------------------------------------------------------------------------
# T1: nearest-mean few-shot error.
# ---------------------------------------------------------------------------------------
_V, _n, _k, _p = _syms("cdnv shots ways dim")
_v1, _v2, _lam1, _lam2, _d, _n1, _n2 = _syms("var1 var2 lambda1 lambda2 distance shots1 shots2")
_FINITE_2ND = "class laws with finite second moments and distinct means (nothing else)"
_NM_RULE = "h_S(x) = argmin_c ||f(x) - mu_f(S_c)||, ties counted as errors"

nearest_mean = Bound(
    "nearest_mean",
    theory_item="T1",
    statement="E_S Pr[h_S(x) != y] <= 16 (k - 1)(1 + 2/n) Avg V "
    "(k-way n-shot nearest-mean error; ways = 2 is T1, ways > 2 is T1b)",
    expr=16 * _V * (1 + 2 / _n) * (_k - 1),
    keywords=("cdnv", "shots", "ways"),
    defaults={"ways": 2},
    kind="probability",
    assumptions=(
        _FINITE_2ND,
        "balanced labels; support sets S_c ~ P_c^n drawn independently",
        _NM_RULE,
        "ways > 2: cdnv is the average CDNV over unordered pairs of the k classes (T1b)",
    ),
    doc="""T1 / T1b: E_S Pr[h_S(x) != y] <= 16 (k - 1) (1 + 2/n) Avg_{c != c'} V_f(P_c, P_c').

    Markov on squares and a union bound over the k - 1 wrong centres (THEORY.md T1, T1b);
    paper: Galanti et al. (2022), Prop. 5 (slides' form, k = 2).

    >>> nearest_mean(cdnv=0.01, shots=1)
    0.48
    >>> nearest_mean.capped(cdnv=1.0, shots=1)
    1.0
    """,
)

nearest_mean_unequal = Bound(
    "nearest_mean_unequal",
    theory_item="T1a",
    statement="E_S err <= 8 [v_1 (1 + 2/n_1) + v_2 (1 + 2/n_2)] / d^2 (two classes, "
    "unequal shots)",
    expr=8 / _d**2 * (_v1 * (1 + 2 / _n1) + _v2 * (1 + 2 / _n2)),
    keywords=("var1", "var2", "distance", "shots1", "shots2"),
    kind="probability",
    assumptions=(_FINITE_2ND, "balanced labels; S_1 ~ P_1^{n_1}, S_2 ~ P_2^{n_2}", _NM_RULE),
    doc="""T1a: E_S err <= 8 [v_1 (1 + 2/n_1) + v_2 (1 + 2/n_2)] / d^2.

    Average of the per-class bounds Pr_c[err] <= 16 (v_c + v_c/n_c + v_c'/n_c') / d^2
    (THEORY.md T1a). Equal shots give T1.

    >>> nearest_mean_unequal(var1=1.0, var2=1.0, distance=10.0, shots1=2, shots2=2)
    0.32
    """,
)

nearest_mean_anisotropic = Bound(
    "nearest_mean_anisotropic",
    theory_item="T1c",
    statement="E_S err <= 8 (lambda_1 + lambda_2)/d^2 + 16 (v_1 + v_2)/(n d^2) (two balanced "
    "classes, lambda_c = largest eigenvalue of Sigma_c)",
    expr=8 / _d**2 * (_lam1 + _lam2) + 16 / (_n * _d**2) * (_v1 + _v2),
    keywords=("lambda1", "lambda2", "var1", "var2", "distance", "shots"),
    relations=(("lambda1", "var1"), ("lambda2", "var2")),
    kind="probability",
    assumptions=(_FINITE_2ND, "balanced labels; S_c ~ P_c^n independent", _NM_RULE,
                 "lambda_c <= v_c (an eigenvalue is at most the trace)"),
    doc="""T1c: E_S err <= 8 (lambda_1 + lambda_2) / d^2 + 16 (v_1 + v_2) / (n d^2)  (<= T1).

    The query noise is independent of the direction w = delta + C - B, so only its variance
    along one direction (at most lambda_c) enters (THEORY.md T1c).

    >>> nearest_mean_anisotropic(lambda1=0.1, lambda2=0.1, var1=1.0, var2=1.0,
    ...                          distance=10.0, shots=4)
    0.096
    """,
)

_Vt = _KEYWORDS["cdnv_directional"].symbol
known_means = Bound(
    "known_means",
    theory_item="T1d",
    statement="Pr_{i->j}[err] <= 4 Vtilde_ij / (1 + 4 Vtilde_ij) (known means, Cantelli)",
    expr=4 * _Vt / (1 + 4 * _Vt),
    keywords=("cdnv_directional",),
    kind="probability",
    assumptions=(
        "class means known exactly (n -> infinity)",
        "per ordered pair: probability that a class-i point is closer to mu_j than to mu_i",
        "finite second moments",
    ),
    doc="""T1d: Pr_{i->j}[err] <= 4 Vt / (1 + 4 Vt), Vt = u^T Sigma_i u / d_ij^2.

    Cantelli's inequality on the one-dimensional margin <f(x) - mu_i, u> >= d/2
    (THEORY.md T1d). An infinite directional CDNV gives the limit 1.

    >>> known_means(cdnv_directional=0.25)
    0.5
    >>> known_means(cdnv_directional=float("inf"))
    1.0
    """,
)

# ---------------------------------------------------------------------------------------
# T2: spherical symmetry.
# ---------------------------------------------------------------------------------------
spherical_as_stated = Bound(
    "spherical_as_stated",
    theory_item="T2",
    statement="slides' form E_S err <= 16 V (1 + 2/n) / p for spherically symmetric classes "
    "-- NOT VALID IN GENERAL",
    expr=16 * _V * (1 + 2 / _n) / _p,
    keywords=("cdnv", "shots", "dim"),
    valid=False,
    kind="probability",
    assumptions=(
        "f o P_c spherically symmetric around its mean (as the slides state it)",
        "FALSE in general: see the counterexample in the docstring and THEORY.md T2",
    ),
    doc="""T2, the slides' form: E_S err <= 16 V (1 + 2/n) / p.  NOT VALID IN GENERAL.

    Counterexample (THEORY.md T2): n = 1, f(x) = mu_c + R U with U uniform on the unit sphere
    of R^p, R = 2d with probability q and 0 otherwise. The law is spherically symmetric with
    Var = 4 q d^2, so V = 4q, and err >= q (1 - q)^2 whatever p. At p = 500, q = 0.05 the
    error is >= 0.045 while this form gives 192 q / p = 0.0192. Use :data:`spherical` (the
    valid 16 V (1/p + 2/n)). A Gaussian-only check of this form is a separate experiment.

    >>> round(spherical_as_stated(cdnv=4 * 0.05, shots=1, dim=500), 4)
    0.0192
    >>> spherical_as_stated.valid
    False
    """,
)

spherical = Bound(
    "spherical",
    theory_item="T2",
    statement="E_S err <= 16 V (1/p + 2/n) for spherically symmetric classes (valid form)",
    expr=16 * _V * (1 / _p + 2 / _n),
    keywords=("cdnv", "shots", "dim"),
    kind="probability",
    assumptions=(
        "f o P_c spherically symmetric around its mean, so Sigma_c = (v_c / p) I",
        "two balanced classes; S_c ~ P_c^n independent",
        _NM_RULE,
    ),
    doc="""T2, the valid form: E_S err <= 16 V (1/p + 2/n).

    T1c with lambda_c = v_c / p: only the query term gains 1/p (THEORY.md T2).

    >>> round(spherical(cdnv=4 * 0.05, shots=1, dim=500), 4)
    6.4064
    """,
)

# ---------------------------------------------------------------------------------------
# T3: CDNV generalises to new samples of the same classes.
# ---------------------------------------------------------------------------------------
_B, _m, _delta, _R = _syms("radius samples delta rademacher")
_BOUNDED = "||f(x) - c_0|| <= B for every x, with f and c_0 fixed independently of the sample"

eps1_mcdiarmid = Bound(
    "eps1_mcdiarmid",
    theory_item="T3",
    statement="with probability >= 1 - delta, ||mu_f(P) - mu_f(S)|| <= B (1 + sqrt(2 ln "
    "(1/delta))) / sqrt(m) (McDiarmid)",
    expr=_B * (1 + sp.sqrt(2 * sp.log(1 / _delta))) / sp.sqrt(_m),
    keywords=("radius", "samples", "delta"),
    kind="distance",
    assumptions=(_BOUNDED, "S ~ P^m i.i.d.", "E||mu_hat - mu|| <= B / sqrt(m)"),
    doc="""T3: eps1(delta) = B (1 + sqrt(2 ln(1/delta))) / sqrt(m)  (McDiarmid).

    >>> round(eps1_mcdiarmid(radius=1.0, samples=10000, delta=0.05), 5)
    0.03448
    """,
)

eps2_hoeffding = Bound(
    "eps2_hoeffding",
    theory_item="T3",
    statement="with probability >= 1 - delta, |E_P ||f||^2 - Avg_S ||f||^2| <= B^2 sqrt(ln "
    "(2/delta) / (2m)) (two-sided Hoeffding)",
    expr=_B**2 * sp.sqrt(sp.log(2 / _delta) / (2 * _m)),
    keywords=("radius", "samples", "delta"),
    kind="distance",
    assumptions=(_BOUNDED, "S ~ P^m i.i.d.; ||f - c_0||^2 in [0, B^2]"),
    doc="""T3: eps2(delta) = B^2 sqrt(ln(2/delta) / (2m))  (two-sided Hoeffding).

    >>> round(eps2_hoeffding(radius=1.0, samples=10000, delta=0.05), 5)
    0.01358
    """,
)

eps1_rademacher = Bound(
    "eps1_rademacher",
    theory_item="T3",
    statement="uniform over F: sup_f ||mu_f(P) - mu_f(S)|| <= Rad + B sqrt(2 ln(1/delta) / m) "
    "with probability >= 1 - delta",
    expr=_R + _B * sp.sqrt(2 * sp.log(1 / _delta) / _m),
    keywords=("rademacher", "radius", "samples", "delta"),
    meaning={"rademacher": "(2/m) E sup_{f in F} ||sum_i sigma_i f(x_i)||, supplied by the "
             "caller (an upper bound on it keeps the statement valid)"},
    kind="distance",
    assumptions=("||f(x) - c_0|| <= B for every x and every f in F", "S ~ P^m i.i.d."),
    doc="""T3, the paper's uniform-over-F eps1 = Rad + B sqrt(2 ln(1/delta) / m).

    >>> round(eps1_rademacher(rademacher=0.01, radius=1.0, samples=10000, delta=0.05), 5)
    0.03448
    """,
)

(_vi, _vj, _b, _e1i, _e1j, _e2i, _e2j, _ai, _aj) = _syms(
    "var_i var_j mean_distance eps1_i eps1_j eps2_i eps2_j mean_norm_i mean_norm_j"
)
_eta = _e1i + _e1j
_err_i = _e2i + 2 * _ai * _e1i + _e1i**2
_err_j = _e2j + 2 * _aj * _e1j + _e1j**2
_T3_VACUOUS = "b <= eta = eps1_i + eps1_j gives +inf (vacuous), also in vectorised calls"

new_samples = Bound(
    "new_samples",
    theory_item="T3",
    statement="V_f(P_i, P_j) <= (Var_f(S_i) + Var_f(S_j) + e_i + e_j) / (2 (b - eta)^2), "
    "e_c = eps2_c + 2 ||mu_f(S_c)|| eps1_c + eps1_c^2, eta = eps1_i + eps1_j; +inf if b <= eta",
    expr=sp.Piecewise(
        ((_vi + _vj + _err_i + _err_j) / (2 * (_b - _eta) ** 2), _b > _eta), (sp.oo, True)
    ),
    keywords=("var_i", "var_j", "mean_distance", "eps1_i", "eps1_j", "eps2_i", "eps2_j",
              "mean_norm_i", "mean_norm_j"),
    kind="cdnv",
    assumptions=(
        "deterministic lemma: holds whenever ||mu_f(P_c) - mu_f(S_c)|| <= eps1_c and "
        "|E_{P_c}||f||^2 - Avg_{S_c}||f||^2| <= eps2_c for c in {i, j}",
        "all norms relative to one centre c_0 chosen independently of the sample",
        _T3_VACUOUS,
    ),
    doc="""T3 lemma: V_f(P_i, P_j) <= (v_i + v_j + e_i + e_j) / (2 (b - eta)^2) if b > eta.

    e_c = eps2_c + 2 ||mu_f(S_c)|| eps1_c + eps1_c^2 bounds Var_f(P_c) - Var_f(S_c), and
    ||mu_f(P_i) - mu_f(P_j)|| >= b - eta. When b <= eta the bound is vacuous and the value is
    +inf (a sympy Piecewise, so vectorised calls give +inf element by element; no warning,
    since a vacuous regime is an answer, not a failure). With the
    eps's from :data:`eps1_mcdiarmid` and :data:`eps2_hoeffding` at delta' = delta/4 it holds
    with probability >= 1 - delta; see :func:`new_samples_from_samples`.

    >>> new_samples(var_i=1.0, var_j=1.0, mean_distance=10.0, eps1_i=0.0, eps1_j=0.0,
    ...             eps2_i=0.0, eps2_j=0.0, mean_norm_i=5.0, mean_norm_j=5.0)
    0.01
    >>> new_samples(var_i=1.0, var_j=1.0, mean_distance=[10.0, 1.0], eps1_i=0.5, eps1_j=0.5,
    ...             eps2_i=0.0, eps2_j=0.0, mean_norm_i=5.0, mean_norm_j=5.0)
    array([0.07716049,        inf])
    """,
)

_quarter = {_delta: _delta / 4}
new_samples_rademacher = Bound(
    "new_samples_rademacher",
    theory_item="T3",
    statement="T3 with eps1 = Rad + B sqrt(2 ln(4/delta) / m) (uniform over F) and the "
    "Hoeffding eps2 at delta/4; +inf if b <= 2 eps1",
    expr=new_samples.expr.subs(
        {
            _e1i: eps1_rademacher.expr.subs(_quarter),
            _e1j: eps1_rademacher.expr.subs(_quarter),
            _e2i: eps2_hoeffding.expr.subs(_quarter),
            _e2j: eps2_hoeffding.expr.subs(_quarter),
        }
    ),
    keywords=("var_i", "var_j", "mean_distance", "mean_norm_i", "mean_norm_j", "rademacher",
              "radius", "samples", "delta"),
    meaning={"rademacher": eps1_rademacher.meaning["rademacher"] + "; one value for both "
             "classes (pass the larger)", "samples": "samples m per class (both classes)"},
    kind="cdnv",
    assumptions=(
        "||f(x) - c_0|| <= B for every x and f; m samples per class, i.i.d.",
        "four events at delta' = delta/4 each: the statement holds with probability >= "
        "1 - delta",
        "eps2 is the fixed-f Hoeffding term; a caller using this uniformly over F must make "
        "eps2 uniform as well",
        _T3_VACUOUS,
    ),
    doc="""T3 with the paper's Rademacher form of eps1 (THEORY.md T3, last paragraph).

    Built by substituting :data:`eps1_rademacher` and :data:`eps2_hoeffding`, each at
    delta/4, into :data:`new_samples`.

    >>> v = new_samples_rademacher(var_i=1.0, var_j=1.0, mean_distance=10.0, mean_norm_i=5.0,
    ...     mean_norm_j=5.0, rademacher=0.01, radius=6.0, samples=10**6, delta=0.05)
    >>> 0.01 < v < 0.02
    True
    """,
)


@dataclass(frozen=True)
class NewSamplesResult:
    """What :func:`new_samples_from_samples` measured and the T3 bound it gives."""

    bound: float
    vacuous: bool
    cdnv_empirical: float
    var_i: float
    var_j: float
    mean_distance: float
    mean_norm_i: float
    mean_norm_j: float
    eps1_i: float
    eps1_j: float
    eps2_i: float
    eps2_j: float
    samples_i: int
    samples_j: int
    radius: float
    delta: float
    delta_each: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_frame(self) -> Any:
        """One tidy row as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([self.as_dict()])


def new_samples_from_samples(
    features_i: Any, features_j: Any, *, radius: float, delta: float, center: Any = None
) -> NewSamplesResult:
    """T3 end to end: the empirical quantities of two samples, the eps's and the bound.

    With c_0 = ``center`` (zero by default; it must not depend on the samples) and
    ``||f - c_0|| <= radius`` for every point, each class c with m_c points gets
    eps1_c = eps1_mcdiarmid(B, m_c, delta/4) and eps2_c = eps2_hoeffding(B, m_c, delta/4),
    so that with probability >= 1 - delta over the samples V_f(P_i, P_j) <= ``bound``.
    ``bound`` is +inf and ``vacuous`` is True when b <= eps1_i + eps1_j.

    Shapes: ``features_i`` (m_i, p), ``features_j`` (m_j, p), ``center`` (p,). All
    arithmetic is float64 in difference form (centred before squaring). THEORY.md T3.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> u = rng.uniform(-1, 1, size=(20000, 2))
    >>> r = new_samples_from_samples(u + [5, 0], u[::-1] - [5, 0], radius=7.0, delta=0.05)
    >>> r.vacuous, bool(r.cdnv_empirical < r.bound)
    (False, True)
    >>> new_samples_from_samples(u[:20] + [5, 0], u[:20] - [5, 0], radius=7.0,
    ...                          delta=0.05).vacuous
    True
    """
    delta = check_probability(delta, "delta")
    try:
        radius_f = float(radius)
    except (TypeError, ValueError):
        raise NCBoundsError(f"radius: expected a finite number > 0, got {describe(radius)}") from None
    if not (math.isfinite(radius_f) and radius_f > 0):
        raise NCBoundsError(f"radius: expected a finite number > 0, got {radius_f!r}")
    xs = []
    for name, feats in (("features_i", features_i), ("features_j", features_j)):
        x = np.asarray(to_numpy(check_features(feats, name)), dtype=np.float64)
        if x.shape[0] < 1:
            raise NCBoundsError(f"{name}: expected at least one sample, got {describe(x)}")
        if not np.isfinite(x).all():
            raise_nonfinite(x, name)
        xs.append(x)
    if xs[0].shape[1] != xs[1].shape[1]:
        raise NCBoundsError(
            f"features_j: expected the dimension of features_i ({xs[0].shape[1]}), "
            f"got {describe(xs[1])}"
        )
    p = xs[0].shape[1]
    c0 = np.zeros(p) if center is None else np.asarray(to_numpy(center), dtype=np.float64)
    if c0.shape != (p,) or not np.isfinite(c0).all():
        raise NCBoundsError(f"center: expected a finite vector of shape ({p},), got {describe(center)}")
    stats = []
    for name, x in (("features_i", xs[0]), ("features_j", xs[1])):
        g = x - c0
        reach = float(np.sqrt(np.max(np.einsum("ij,ij->i", g, g))))
        if reach > radius_f * (1 + 1e-12):
            raise NCBoundsError(
                f"radius: expected sup ||f - center|| <= radius = {radius_f!r}, but {name} "
                f"reaches {reach!r}"
            )
        mu = g.mean(axis=0)
        r = g - mu
        stats.append((x.shape[0], mu, float(np.einsum("ij,ij->i", r, r).mean())))
    (m_i, mu_i, var_i), (m_j, mu_j, var_j) = stats
    b = float(np.linalg.norm(mu_i - mu_j))
    if b > 0:
        cdnv_emp = (var_i + var_j) / (2 * b * b)
    else:
        warnings.warn("the two empirical means coincide: empirical CDNV is +inf",
                      NCBoundsWarning, stacklevel=2)
        cdnv_emp = math.inf
    each = delta / 4
    e1 = [eps1_mcdiarmid(radius=radius_f, samples=m, delta=each) for m in (m_i, m_j)]
    e2 = [eps2_hoeffding(radius=radius_f, samples=m, delta=each) for m in (m_i, m_j)]
    a_i, a_j = float(np.linalg.norm(mu_i)), float(np.linalg.norm(mu_j))
    value = new_samples(var_i=var_i, var_j=var_j, mean_distance=b, eps1_i=e1[0], eps1_j=e1[1],
                        eps2_i=e2[0], eps2_j=e2[1], mean_norm_i=a_i, mean_norm_j=a_j)
    return NewSamplesResult(
        bound=value, vacuous=bool(np.isinf(value)), cdnv_empirical=cdnv_emp, var_i=var_i,
        var_j=var_j, mean_distance=b, mean_norm_i=a_i, mean_norm_j=a_j, eps1_i=e1[0],
        eps1_j=e1[1], eps2_i=e2[0], eps2_j=e2[1], samples_i=m_i, samples_j=m_j,
        radius=radius_f, delta=delta, delta_each=each,
    )


# ---------------------------------------------------------------------------------------
# T4: CDNV generalises to new classes.
# ---------------------------------------------------------------------------------------
_G, _M, _l, _sides = _syms("cdnv_source cdnv_max sources sides")
_C, _smax, _Delta = _syms("constant var_max margin")
_s, _N = _syms("side classes")

new_classes = Bound(
    "new_classes",
    theory_item="T4",
    statement="G <= Ghat + M sqrt(ln(sides/delta) / (2 floor(l/2))) with probability >= "
    "1 - delta (fixed f, U-statistic of order 2)",
    expr=_G + _M * sp.sqrt(sp.log(_sides / _delta) / (2 * sp.floor(_l / 2))),
    keywords=("cdnv_source", "cdnv_max", "sources", "delta", "sides"),
    defaults={"sides": 1},
    relations=(("cdnv_source", "cdnv_max"),),
    kind="cdnv",
    assumptions=(
        "f fixed independently of the source classes",
        "source classes drawn i.i.d. (distinct) from the distribution D over classes; "
        "G = E_{P != P'} V_f(P, P')",
        "0 <= V_f <= M on the support (M <= s_max / Delta^2)",
        "sides = 2 gives the two-sided form (ln(2/delta))",
        "classes drawn without replacement from a finite set: checked empirically "
        "(coverage), not proven",
    ),
    doc="""T4, certified for a fixed f: G <= Ghat + M sqrt(ln(sides/delta) / (2 floor(l/2))).

    Hoeffding (1963) for U-statistics of order 2 (THEORY.md T4).

    >>> round(new_classes(cdnv_source=0.1, cdnv_max=1.0, sources=100, delta=0.05), 4)
    0.2731
    """,
)

new_classes_rate = Bound(
    "new_classes_rate",
    theory_item="T4",
    statement="rate, not a certified bound: C (1 + s_max / Delta) Rad / ((l - 1) Delta^2) "
    "(the slides' rate with a caller-supplied constant C)",
    expr=_C * (1 + _smax / _Delta) * _R / ((_l - 1) * _Delta**2),
    keywords=("constant", "var_max", "margin", "rademacher", "sources"),
    meaning={"rademacher": "Rad(F*), Rademacher complexity of the class of feature maps, "
             "supplied by the caller"},
    certified=False,
    kind="rate",
    assumptions=(
        "the slides hide constants behind '<~': C is the caller's choice, so this is a rate",
        "bounds E sup_{f in F*} (E_{P != P'} V_f - Avg_{i != j} V_f(source classes))",
    ),
    doc="""T4, the slides' rate (NOT a certified bound):

    C (1 + s_max / Delta) Rad(F*) / ((l - 1) Delta^2).

    >>> new_classes_rate(constant=1.0, var_max=1.0, margin=1.0, rademacher=1.0, sources=3)
    1.0
    >>> new_classes_rate.certified
    False
    """,
)

_Vp = sp.pi ** (_p / 2) / sp.gamma(_p / 2 + 1)
cube_margin = Bound(
    "cube_margin",
    theory_item="T4",
    statement="a LOWER bound on the margin: Delta >= s (2 delta / (N (N - 1) V_p))^(1/p), "
    "V_p = pi^(p/2) / Gamma(p/2 + 1), with probability >= 1 - delta",
    expr=_s * (2 * _delta / (_N * (_N - 1) * _Vp)) ** (1 / _p),
    keywords=("side", "classes", "dim", "delta"),
    stable_log_form=True,
    kind="distance",
    assumptions=(
        "N class means i.i.d. uniform in a p-cube of side s",
        "union bound over the N(N - 1)/2 pairs, Pr(||X - Y|| < r) <= V_p r^p / s^p",
        "this is a lower bound on Delta (the check direction is reversed)",
    ),
    doc="""T4 cube example: Delta >= s (2 delta / (N (N - 1) V_p))^(1/p), a LOWER bound.

    Evaluated in log form (log Gamma), so large dimensions do not overflow.

    >>> round(cube_margin(side=1.0, classes=2, dim=1, delta=0.5), 6)   # 2 * 0.5 / (2 * 2)
    0.25
    >>> 0 < cube_margin(side=1.0, classes=100, dim=2048, delta=0.01) < 2048 ** 0.5  # diagonal
    True
    """,
)

_REGISTRY: tuple[Bound, ...] = (
    nearest_mean,
    nearest_mean_unequal,
    nearest_mean_anisotropic,
    known_means,
    spherical_as_stated,
    spherical,
    eps1_mcdiarmid,
    eps2_hoeffding,
    eps1_rademacher,
    new_samples,
    new_samples_rademacher,
    new_classes,
    new_classes_rate,
    cube_margin,
)


def registry() -> dict[str, Bound]:
    """All bounds by name, in THEORY.md order.

    >>> [b.theory_item for b in registry().values()][:4]
    ['T1', 'T1a', 'T1c', 'T1d']
    """
    return {b.name: b for b in _REGISTRY}


# Doctests in the Bound objects' own docstrings (instances are not collected otherwise).
__test__ = {b.name: b.__doc__ for b in _REGISTRY}
