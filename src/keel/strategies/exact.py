"""Correctly rounded moving means: the exact mean of every window, rounded once to the nearest double.

Why exact: strategies compare averages of different lengths, and tick-sized prices make exact ties common
(on a flat stretch every average is equal). Summing then dividing in floating point breaks such ties at
random — ten copies of 100.01 do not average to the same double as thirty copies — so a flat market would
"cross". Here equal exact means always give identical doubles, and two means compare in floating point as
they do exactly, unless they are less than one unit in the last place apart.

How: every finite double is an integer multiple of 2**emin (emin: the smallest exponent in the series), so
the scaled series is a sequence of integers and window sums are exact differences of integer prefix sums.
A window sum then takes one of three vectorized integer routes, by the bits it needs:
- one int64 word (up to 62 bits: for a 30-bar window, prices within a factor of 16 to 32 of each other);
- two words (up to 93 bits: prices spanning a wider range, most return series);
- 27-bit limbs with a long division (anything else, and every window the word routes cannot settle:
  sums so close to zero that the quotient has fewer than 53 bits).
Means below the smallest normal double (≈2.2e-308) are rounded twice; nothing else is. Memory is a few
arrays of the series' length, times the limb count on the last route (which grows with the dynamic range).
Elementwise chains run over cache-sized slices, which makes them several times faster than whole arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["WindowMeans"]

_CHUNK = 16_384  # elements per slice in elementwise chains (temporaries stay in cache)
_LO_BITS = 31  # low word of the two-word route
_LO_MASK = (1 << _LO_BITS) - 1
_LIMB_BITS = 27  # limb size of the long division: a three-limb window always yields 54 bits with one shift
_LIMB_MASK = (1 << _LIMB_BITS) - 1
_ONE_WORD_BITS = 62
_TWO_WORD_BITS = 93
_TWO_WORD_MAX_WINDOW = 1 << 21  # keeps 2·(dropped bits · n) inside int64
MAX_WINDOW = 1 << 34  # keeps (remainder << 27) inside int64 during the long division


class WindowMeans:
    """Correctly rounded means of one series over any number of window lengths, sharing the preparation.

    `means(n)` has length len(x) − n + 1: entry j is the mean of x[j : j + n]. A window holding a non-finite
    value gives NaN.
    """

    def __init__(self, x: np.ndarray) -> None:
        self._size = x.shape[0]
        self._bad: np.ndarray | None = None
        if self._size and not np.isfinite(x.sum()):  # one pass answers "all finite?" in the common case
            finite = np.isfinite(x)
            if not finite.all():
                self._bad = np.concatenate(([0], np.cumsum(~finite)))
                x = np.where(finite, x, 0.0)
        self._x = x
        largest, smallest = 0.0, np.inf
        self._positive = False  # all values > 0: every window sum is positive and settles on the fast route
        if self._size:
            lo, hi = float(x.min()), float(x.max())
            largest = max(-lo, hi)
            if lo > 0.0:
                smallest, self._positive = lo, True
            else:
                magnitude = np.abs(x)
                smallest = float(np.min(magnitude, where=magnitude > 0.0, initial=np.inf))
        self._zero = largest == 0.0
        if not self._zero:
            self._emin = int(np.frexp(smallest)[1]) - 53  # every |x| = M · 2**(e − 53), integer M < 2**53
            self._bits_x = int(np.frexp(largest)[1]) - self._emin  # every scaled |x| < 2**bits_x
        self._one: np.ndarray | None = None
        self._two: tuple[np.ndarray, np.ndarray] | None = None
        self._limbs: dict[int, np.ndarray] = {}

    def means(self, n: int) -> np.ndarray:
        """Mean of every full window of length n (1 <= n <= len(x))."""
        if not 1 <= n <= min(self._size, MAX_WINDOW):
            raise ValueError(f"window {n} outside [1, {min(self._size, MAX_WINDOW)}]")
        m = self._size - n + 1
        if self._zero:
            out = np.zeros(m)
        elif n == 1:
            out = self._x + 0.0  # a mean of one value is the value (and −0.0 becomes 0.0, as on other routes)
        else:
            bits_w = self._bits_x + n.bit_length()  # every |window sum| < 2**bits_w
            if bits_w <= _ONE_WORD_BITS:
                out = self._one_word_means(n, bits_w)
            elif bits_w <= _TWO_WORD_BITS and n < _TWO_WORD_MAX_WINDOW:
                out = self._two_word_means(n, bits_w)
            else:
                out = _long_division_means(self._limb_sums(n, bits_w // _LIMB_BITS + 1), n, self._emin)
        if self._bad is not None:
            out[(self._bad[n:] - self._bad[:-n]) > 0] = np.nan
        return out

    # -- one word ---------------------------------------------------------------------------------------

    def _one_word_means(self, n: int, bits_w: int) -> np.ndarray:
        if self._one is None:
            self._one = self._one_word_prefix()
        sums = (self._one[n:] - self._one[:-n]).view(np.int64)  # unsigned wrap-around cancels out
        out = np.empty(sums.shape[0])
        for c in _chunks(sums.shape[0]):
            out[c] = _round_one_word(sums[c], n, self._emin, positive=self._positive)
        if not self._positive:  # settled where the quotient has ≥ 53 bits (n < 2**9 on this route: no overflow)
            redo = np.flatnonzero(np.abs(sums) < np.int64(n) << 52)
            if redo.size:
                out[redo] = _long_division_means(_limbs_of_words(sums[redo], None, bits_w), n, self._emin)
        return out

    def _one_word_prefix(self) -> np.ndarray:
        """Prefix sums of the scaled series modulo 2**64 (they may wrap; window sums fit in 62 bits)."""
        scaled = _scale(self._x, -self._emin).astype(np.int64)  # exact: integers below 2**62
        prefix = np.zeros(self._size + 1, dtype=np.uint64)
        np.cumsum(scaled.view(np.uint64), out=prefix[1:])  # unsigned arithmetic wraps by definition
        return prefix

    # -- two words --------------------------------------------------------------------------------------

    def _two_word_means(self, n: int, bits_w: int) -> np.ndarray:
        if self._two is None:
            self._two = self._two_word_prefix()
        phi, plo = self._two
        hi = (phi[n:] - phi[:-n]).view(np.int64)
        lo = plo[n:] - plo[:-n]
        out = np.empty(hi.shape[0])
        settled = np.empty(hi.shape[0], dtype=bool)
        for c in _chunks(hi.shape[0]):
            h, low = hi[c], lo[c]
            h += low >> _LO_BITS  # carry: the low word into [0, 2**31), floor semantics
            low &= _LO_MASK
            out[c], settled[c] = _round_two_words(h, low, n, self._emin)
        if not settled.all():
            redo = np.flatnonzero(~settled)
            out[redo] = _long_division_means(_limbs_of_words(hi[redo], lo[redo], bits_w), n, self._emin)
        return out

    def _two_word_prefix(self) -> tuple[np.ndarray, np.ndarray]:
        """Prefix sums of the scaled series split at bit 31: high words modulo 2**64, low words exact."""
        scaled = _scale(self._x, -self._emin)  # exact: integers below 2**93
        high = np.floor(np.ldexp(scaled, -_LO_BITS))  # exact, floor semantics: the low word is in [0, 2**31)
        low = scaled - np.ldexp(high, _LO_BITS)  # exact
        phi = np.zeros(self._size + 1, dtype=np.uint64)
        plo = np.zeros(self._size + 1, dtype=np.int64)
        np.cumsum(high.astype(np.int64).view(np.uint64), out=phi[1:])
        np.cumsum(low.astype(np.int64), out=plo[1:])  # below len · 2**31: exact for any realistic length
        return phi, plo

    # -- limbs ------------------------------------------------------------------------------------------

    def _limb_sums(self, n: int, nlimbs: int) -> np.ndarray:
        """Window sums as signed 27-bit limbs, carried (every limb but the top in [0, 2**27))."""
        if nlimbs not in self._limbs:
            limbs = np.empty((nlimbs, self._size), dtype=np.int64)
            mask = np.uint64(_LIMB_MASK)
            for c in _chunks(self._size):
                mantissa, shift, negative = self._scaled_parts(c)
                for k in range(nlimbs):
                    up = np.maximum(shift - _LIMB_BITS * k, 0).astype(np.uint64)
                    down = np.maximum(_LIMB_BITS * k - shift, 0).astype(np.uint64)
                    limb = (((mantissa << up) >> down) & mask).view(np.int64)
                    limbs[k, c] = np.where(negative, -limb, limb)
            prefix = np.zeros((nlimbs, self._size + 1), dtype=np.int64)
            np.cumsum(limbs, axis=1, out=prefix[:, 1:])
            self._limbs[nlimbs] = prefix
        prefix = self._limbs[nlimbs]
        sums = prefix[:, n:] - prefix[:, :-n]
        _carry(sums)
        return sums

    def _scaled_parts(self, c: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """|x| · 2**-emin = mantissa << shift (mantissa < 2**53); zeros have mantissa 0 and any shift.

        Shifts below rely on numpy's defined semantics: unsigned shifts wrap, and a shift by 64 or more gives 0.
        """
        frac, exp = np.frexp(self._x[c])
        mantissa = (np.abs(frac) * 2.0**53).astype(np.uint64)  # exact: |frac| in [0.5, 1) or 0
        return mantissa, exp.astype(np.int64) - 53 - self._emin, frac < 0.0


# -- rounding -----------------------------------------------------------------------------------------------


def _round_one_word(sums: np.ndarray, n: int, emin: int, *, positive: bool) -> np.ndarray:
    """sums / n · 2**emin to nearest even, for sums whose integer quotient has at least 53 bits.

    With q = |sum| // n and remainder r, z = 4q + floor(4r / n), its last bit or-ed with "anything left",
    carries a guard bit and a sticky bit below the 53 kept ones, so the hardware's own int64 → double
    conversion (round to nearest even) rounds z exactly as the true quotient would round.
    """
    d = np.int64(n)  # a numpy divisor is about twice as fast as a Python int here
    a = sums if positive else np.abs(sums)
    q = a // d
    r4 = (a - q * d) << 2
    f = r4 // d
    z = (q << 2) | f | (r4 != f * d)
    out = _scale(z.astype(np.float64), emin - 2)
    if not positive:
        np.negative(out, out=out, where=sums < 0)
    return out


def _scale(values: np.ndarray, exponent: int) -> np.ndarray:
    """values · 2**exponent; a multiplication when the power of two is a normal double (much faster)."""
    if -1022 <= exponent <= 1023:
        return values * 2.0**exponent
    return np.ldexp(values, exponent)


def _round_two_words(hi: np.ndarray, lo: np.ndarray, n: int, emin: int) -> tuple[np.ndarray, np.ndarray]:
    """(hi · 2**31 + lo) / n · 2**emin to nearest even (lo in [0, 2**31)), and where that is settled."""
    negative = hi < 0
    borrow = (lo > 0).astype(np.int64)
    hi = np.where(negative, -hi - borrow, hi)  # magnitude of a two-word value
    lo = np.where(negative, ((1 << _LO_BITS) - lo) & _LO_MASK, lo)
    d = np.int64(n)
    q_hi = hi // d
    cur = ((hi - q_hi * d) << _LO_BITS) | lo
    q_lo = cur // d
    r = cur - q_lo * d
    settled = q_hi >= 1 << 21  # the quotient q_hi · 2**31 + q_lo has at least 53 bits
    drop = np.frexp((q_hi >> 9).astype(np.float64))[1].astype(np.int64) + 9 - 22  # bit length − 53: 0..40
    low_only = drop <= _LO_BITS
    mant = np.where(
        low_only,
        (q_hi << np.clip(_LO_BITS - drop, 0, 63)) | (q_lo >> np.clip(drop, 0, 63)),
        q_hi >> np.clip(drop - _LO_BITS, 0, 63),
    )
    dropped = np.where(
        low_only,
        q_lo & ((np.int64(1) << np.clip(drop, 0, 62)) - 1),
        ((q_hi & ((np.int64(1) << np.clip(drop - _LO_BITS, 0, 62)) - 1)) << _LO_BITS) | q_lo,
    )
    twice = 2 * (dropped * d + r)
    half = d << np.clip(drop, 0, 62)
    mant += (twice > half) | ((twice == half) & ((mant & 1) == 1))
    out = np.ldexp(mant.astype(np.float64), (drop + emin).astype(np.int32))
    np.negative(out, out=out, where=negative)
    return out, settled


def _limbs_of_words(hi: np.ndarray, lo: np.ndarray | None, bits_w: int) -> np.ndarray:
    """Exact window sums given as one int64 word, or as hi · 2**31 + lo, re-cut into carried 27-bit limbs."""
    nlimbs = bits_w // _LIMB_BITS + 1
    limbs = np.empty((nlimbs, hi.shape[0]), dtype=np.int64)
    lo_bits = 0 if lo is None else _LO_BITS
    for k in range(nlimbs):
        start = _LIMB_BITS * k - lo_bits  # where limb k starts, counted in hi's bits
        if start >= 0:
            part = hi >> start  # arithmetic shift: floor semantics, the top limb keeps the sign
        else:  # a low limb: hi's lowest bits go above lo's, masked first so nothing overflows
            part = (hi & ((1 << (_LIMB_BITS + start)) - 1)) << -start if start > -_LIMB_BITS else np.zeros_like(hi)
        if lo is not None and _LIMB_BITS * k < _LO_BITS:
            part = part | (lo >> (_LIMB_BITS * k))
        limbs[k] = part if k == nlimbs - 1 else part & _LIMB_MASK
    return limbs


def _carry(limbs: np.ndarray) -> None:
    """Propagate carries upward so every limb but the top lies in [0, 2**27) (floor semantics)."""
    for k in range(limbs.shape[0] - 1):
        limbs[k + 1] += limbs[k] >> _LIMB_BITS
        limbs[k] &= _LIMB_MASK


def _long_division_means(limbs: np.ndarray, n: int, emin: int) -> np.ndarray:
    """Round (Σ limbs[k] · 2**(27k)) / n · 2**emin to nearest even, for carried signed limbs of any size.

    Long division continues 2 + ceil(bits(n)/27) limbs below the binary point, which guarantees three full
    quotient limbs (≥ 55 bits) under the leading one; whatever lies below them, and the final remainder,
    only matter as a sticky bit.
    """
    limbs = limbs.copy()
    negative = limbs[-1] < 0
    if negative.any():
        np.negative(limbs, out=limbs, where=negative)
        _carry(limbs)
    nlimbs, m = limbs.shape
    frac_limbs = 2 + -(-n.bit_length() // _LIMB_BITS)
    total = nlimbs + frac_limbs
    q = np.zeros((total + 2, m), dtype=np.int64)  # two zero rows below, so the three-limb window never wraps
    rem = np.zeros(m, dtype=np.int64)
    for k in range(total - 1, -1, -1):
        cur = rem << _LIMB_BITS
        if k >= frac_limbs:
            cur += limbs[k - frac_limbs]
        q[k + 2] = cur // n
        rem = cur - q[k + 2] * n
    top = np.zeros(m, dtype=np.intp)  # highest nonzero quotient row
    low = np.full(m, total + 2, dtype=np.intp)  # lowest nonzero quotient row
    for k in range(2, total + 2):
        top = np.where(q[k] != 0, k, top)
    for k in range(total + 1, 1, -1):
        low = np.where(q[k] != 0, k, low)
    cols = np.arange(m)
    g0, g1, g2 = q[top, cols], q[top - 1, cols], q[top - 2, cols]
    bl = np.frexp(g0.astype(np.float64))[1].astype(np.int64)  # bit length of the leading limb, 1..27
    # The leading 54 bits of g0·2**54 + g1·2**27 + g2 (which has bl + 54 bits): one right shift by bl.
    top54 = (g0 << (54 - bl)) | (g1 << (27 - bl)) | (g2 >> bl)
    sticky = ((g2 & ((np.int64(1) << bl) - 1)) != 0) | (low < top - 2) | (rem != 0)
    mant = top54 >> 1
    mant += ((top54 & 1) == 1) & (sticky | ((mant & 1) == 1))
    # top54's unit is 2**(27 · (top − 4 − frac_limbs) + bl) in units of 2**emin; mant's is twice that.
    scale = _LIMB_BITS * (top - 4 - frac_limbs) + bl + 1 + emin
    out = np.ldexp(mant.astype(np.float64), scale.astype(np.int32))
    np.negative(out, out=out, where=negative)
    return out


def _chunks(size: int) -> list[slice]:
    return [slice(s, s + _CHUNK) for s in range(0, size, _CHUNK)]
