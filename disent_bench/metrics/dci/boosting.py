"""Gradient boosting for DCI: scikit-learn's ``GradientBoostingClassifier`` with default settings, re-implemented.

DCI's numbers are defined by the reference's estimator, ``sklearn.ensemble.GradientBoostingClassifier()``
with its defaults (Friedman 2001, "Greedy Function Approximation: A Gradient Boosting Machine"): log-loss
(multinomial with K trees per stage for K > 2 classes, binomial with one tree per stage for 2), 100
stages, learning rate 0.1, regression trees of depth 3 on the negative gradient grown best-first over
every feature (squared-error split criterion, which for unit weights ranks splits exactly as the
``friedman_mse`` of the 2019 reference did), min_samples_split 2, min_samples_leaf 1, subsample 1.0,
class priors as the initial model, one Newton step per leaf. :func:`fit_predict` computes the same
fitted model, importances and predictions, bit for bit on the cases we test, in a fraction of the time.

Exactness, not just the same algorithm: a fitted tree depends on floating-point ties (which of two
equally good splits wins is decided by the order in which features are visited, drawn from the tree's
own xorshift generator seeded from ``numpy.random.RandomState(random_state)``, and by the rounding of
running sums whose order follows scikit-learn's introsort of the node's samples). So this module
follows scikit-learn 1.9's tree builder step by step: the same feature draws, the same sample order
(introsort with 3-way partitioning for features with repeated values), the same sums in the same order
(including the criterion's shortcut of summing from the far end), the same thresholds (mid-points in
double precision of float32 values), the same constant-feature bookkeeping and leaf updates.

Where the time goes instead: scikit-learn sorts the node's samples for every feature at every node
(O(m log m)); for a feature without repeated values the sorted order of any subset is unique, so here
it is taken from one global argsort per fit, kept per node by stable partitioning (O(m)). Repeated
values of interchangeable samples (duplicated codes with the same target, see :class:`TieGroups`)
do not make the order ambiguous either; only features with ties between samples a tree can tell apart
are sorted with the exact introsort, in that tree. The trees of one stage (one per class) are
independent given the stage's gradient and are built in parallel threads (numba, GIL released), so
the fit scales with cores; results do not depend on the thread count.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
import scipy.special
import scipy.stats

from disent_bench.devices import usable_cores

__all__ = ["BoostedTrees", "Codes", "TieGroups", "fit", "fit_predict"]

RAND_R_MAX = 2147483647  # scikit-learn's bound for the per-tree seed of its xorshift generator
_FEATURE_THRESHOLD = np.float32(1e-7)  # values closer than this (in float32) count as equal
_EPSILON = float(np.finfo(np.float64).eps)  # "pure node" and "no improvement" tolerance of the builder
_TREE_LEAF = -1
_UNDEFINED = -2

_jit = numba.njit(cache=True, nogil=True)


# ---------------------------------------------------------------------------------------------------
# Random feature order: scikit-learn's 32-bit xorshift (Marsaglia 2003), reduced to [0, 2^31).
# ---------------------------------------------------------------------------------------------------
@_jit
def _rand_int(low, high, state):
    s = state[0]
    if s == 0:
        s = 1
    s = (s ^ (s << 13)) & 0xFFFFFFFF
    s = s ^ (s >> 17)
    s = (s ^ (s << 5)) & 0xFFFFFFFF
    state[0] = s
    return low + (s % 2147483648) % (high - low)


# ---------------------------------------------------------------------------------------------------
# Introsort of (values, indices) with median-of-3 pivots and 3-way partitioning, as scikit-learn sorts a
# node's samples. Equal values are left in an order that depends on the input order; that order decides
# the rounding of later sums, so it has to be the same. The recursion is replaced by a stack: the parts
# are disjoint, so the order in which they are sorted does not change the result.
# ---------------------------------------------------------------------------------------------------
@_jit
def _swap(values, indices, i, j):
    v = values[i]
    values[i] = values[j]
    values[j] = v
    t = indices[i]
    indices[i] = indices[j]
    indices[j] = t


@_jit
def _median3(values, off, n):
    a = values[off]
    b = values[off + n // 2]
    c = values[off + n - 1]
    if a < b:
        if b < c:
            return b
        elif a < c:
            return c
        return a
    elif b < c:
        if a < c:
            return a
        return c
    return b


@_jit
def _sift_down(values, indices, off, start, end):
    root = start
    while True:
        child = root * 2 + 1
        maxind = root
        if child < end and values[off + maxind] < values[off + child]:
            maxind = child
        if child + 1 < end and values[off + maxind] < values[off + child + 1]:
            maxind = child + 1
        if maxind == root:
            break
        _swap(values, indices, off + root, off + maxind)
        root = maxind


@_jit
def _heapsort(values, indices, off, n):
    start = (n - 2) // 2
    end = n
    while True:
        _sift_down(values, indices, off, start, end)
        if start == 0:
            break
        start -= 1
    end = n - 1
    while end > 0:
        _swap(values, indices, off, off + end)
        _sift_down(values, indices, off, 0, end)
        end -= 1


@_jit
def _insertion_sort(values, indices, off, n):
    for i in range(1, n):
        temp_val = values[off + i]
        temp_idx = indices[off + i]
        j = i
        while j > 0 and values[off + j - 1] > temp_val:
            values[off + j] = values[off + j - 1]
            indices[off + j] = indices[off + j - 1]
            j -= 1
        values[off + j] = temp_val
        indices[off + j] = temp_idx


# ---------------------------------------------------------------------------------------------------
# One regression tree (squared error, best splits, depth-first), as scikit-learn's DepthFirstTreeBuilder
# with BestSplitter, DensePartitioner and the MSE criterion at unit sample weights.
# ---------------------------------------------------------------------------------------------------
@_jit
def _sum_left_at(y, samples, start, end, pos, new_pos, sum_left, sum_total):
    """The criterion's running left sum moved from ``pos`` to ``new_pos`` (its exact order of additions)."""
    if (new_pos - pos) <= (end - new_pos):
        for p in range(pos, new_pos):
            sum_left += y[samples[p]]
    else:  # cheaper from the end: restart from the total and subtract the right part
        sum_left = sum_total
        for p in range(end - 1, new_pos - 1, -1):
            sum_left -= y[samples[p]]
    return sum_left


@_jit
def _active_tie_groups(feature, tag, node_tag, target, row_id, tie_feature_ptr, tie_group_ptr, tie_members,
                       XT, out_values):
    """The tie groups of ``feature`` in which node ``tag`` holds two samples that differ in code or target:
    their values go to ``out_values``; returns how many."""
    count = 0
    for g in range(tie_feature_ptr[feature], tie_feature_ptr[feature + 1]):
        first_key = -1
        for q in range(tie_group_ptr[g], tie_group_ptr[g + 1]):
            i = tie_members[q]
            if node_tag[i] != tag:
                continue
            key = 2 * row_id[i] + (1 if target[i] != 0.0 else 0)
            if first_key == -1:
                first_key = key
            elif key != first_key:
                out_values[count] = XT[feature, i]
                count += 1
                break
    return count


@_jit
def _introsort_where_tied(values, samples, start, n, XT, feature, sorted_seg, tie_positions, n_ties):
    """scikit-learn's introsort of ``samples[start:start + n]`` by ``values``, carried out only where it
    decides something: a part that holds none of the ``n_ties`` groups of equal values starting at
    ``tie_positions`` (in sorted order) ends up in its unique sorted order, copied from ``sorted_seg``.
    """
    stack_off = np.empty(256, np.int64)
    stack_n = np.empty(256, np.int64)
    stack_d = np.empty(256, np.int64)
    stack_off[0] = start
    stack_n[0] = n
    stack_d[0] = 2 * int(math.log2(n)) if n > 0 else 0
    top = 1
    while top > 0:
        top -= 1
        o = stack_off[top]
        m = stack_n[top]
        maxd = stack_d[top]
        while m > 0:
            holds_tie = False
            for t in range(n_ties):
                if o <= tie_positions[t] < o + m:
                    holds_tie = True
                    break
            if not holds_tie:
                for p in range(o, o + m):
                    s = sorted_seg[p]
                    samples[p] = s
                    values[p] = XT[feature, s]
                break
            if m <= 15:
                _insertion_sort(values, samples, o, m)
                break
            if maxd <= 0:
                _heapsort(values, samples, o, m)
                break
            maxd -= 1
            pivot = _median3(values, o, m)
            i = 0
            lo = 0
            r = m
            while i < r:
                v = values[o + i]
                if v < pivot:
                    _swap(values, samples, o + i, o + lo)
                    i += 1
                    lo += 1
                elif v > pivot:
                    r -= 1
                    _swap(values, samples, o + i, o + r)
                else:
                    i += 1
            stack_off[top] = o
            stack_n[top] = lo
            stack_d[top] = maxd
            top += 1
            o += r
            m -= r


@_jit
def _build_tree(XT, y, target, presorted, has_ties, tie_feature_ptr, tie_group_ptr, tie_members, row_id,
                root_orders, root_slot, seed, max_depth, node_left, node_right, node_feature, node_threshold,
                node_impurity, node_weight, node_value, leaf_of):
    """Grow one tree on ``(X, y)`` given ``XT = X.T`` (contiguous: a feature's values are gathered at
    random sample indices); fill the node arrays and each sample's leaf; return the node count.

    ``has_ties[f]``: feature ``f`` has equal values on samples that are not interchangeable for this
    tree (see :class:`TieGroups`); ``tie_*`` list those groups of equal values (CSR: per feature
    its groups, per group its samples) and ``row_id`` tells which samples have the same code. Where a
    node holds two samples of one such group that differ in code or ``target``, its samples are sorted
    with scikit-learn's introsort from the node's current order, which decides the order of the equal
    ones and so the rounding of the sums; elsewhere the sorted order is unique up to interchangeable
    samples and is taken from ``presorted``, kept per node by stable partitioning. Both give
    scikit-learn's sums bit for bit. At the root, the introsort's result for feature ``f`` may come
    ready-made: ``root_orders[root_slot[f]]`` when ``root_slot[f] >= 0`` (see :class:`RootOrders`).
    """
    n_features, n = XT.shape
    samples = np.arange(n)
    values = np.empty(n, np.float32)
    features = np.arange(n_features)
    constant_features = np.empty(n_features, np.int64)
    # Per feature: the node's samples in that feature's presorted order (unique up to interchangeable samples
    # where the feature has no tie a tree can tell apart; elsewhere what the introsort copies untied parts from).
    sorted_seg = presorted.copy()
    buffer = np.empty(n, np.int64)
    goes_left = np.zeros(n, np.bool_)
    node_tag = np.zeros(n, np.int64)  # which node of the depth-first stack a sample is in (root: 0)
    max_groups = 0
    for f in range(n_features):
        max_groups = max(max_groups, tie_feature_ptr[f + 1] - tie_feature_ptr[f])
    tie_values = np.empty(max_groups, np.float32)
    tie_positions = np.empty(max_groups, np.int64)
    state = np.empty(1, np.int64)
    state[0] = seed
    w_total = float(n)

    cap = 2 * max_depth + 4
    st_start = np.empty(cap, np.int64)
    st_end = np.empty(cap, np.int64)
    st_depth = np.empty(cap, np.int64)
    st_parent = np.empty(cap, np.int64)
    st_is_left = np.empty(cap, np.bool_)
    st_impurity = np.empty(cap, np.float64)
    st_nconst = np.empty(cap, np.int64)
    st_tag = np.zeros(cap, np.int64)
    st_start[0] = 0
    st_end[0] = n
    st_depth[0] = 0
    st_parent[0] = -1
    st_is_left[0] = False
    st_impurity[0] = np.inf
    st_nconst[0] = 0
    top = 1
    node_count = 0
    first = True

    while top > 0:
        top -= 1
        start = st_start[top]
        end = st_end[top]
        depth = st_depth[top]
        parent = st_parent[top]
        is_left = st_is_left[top]
        impurity = st_impurity[top]
        n_known_constants = st_nconst[top]
        tag = st_tag[top]
        n_node = end - start

        sum_total = 0.0
        sq_sum_total = 0.0
        w_node = 0.0
        for p in range(start, end):
            yi = y[samples[p]]
            sum_total += yi
            sq_sum_total += yi * yi
            w_node += 1.0

        is_leaf = depth >= max_depth or n_node < 2
        if first:
            mean = sum_total / w_node
            impurity = sq_sum_total / w_node - mean * mean
            first = False
        is_leaf = is_leaf or impurity <= _EPSILON

        best_pos = end
        best_feature = 0
        best_threshold = 0.0
        imp_left = np.inf
        imp_right = np.inf
        n_total_constants = n_known_constants
        if not is_leaf:
            # ---- best split over features visited in random order (Fisher-Yates draws) ----
            best_proxy = -np.inf
            f_i = n_features
            n_visited = 0
            n_found_constants = 0
            n_drawn_constants = 0
            while f_i > n_total_constants and (n_visited < n_features
                                               or n_visited <= n_found_constants + n_drawn_constants):
                n_visited += 1
                f_j = _rand_int(n_drawn_constants, f_i - n_found_constants, state)
                if f_j < n_known_constants:
                    t = features[n_drawn_constants]
                    features[n_drawn_constants] = features[f_j]
                    features[f_j] = t
                    n_drawn_constants += 1
                    continue
                f_j += n_found_constants
                feature = features[f_j]
                if depth == 0 and root_slot[feature] >= 0:
                    slot = root_slot[feature]
                    for p in range(start, end):
                        s = root_orders[slot, p]
                        samples[p] = s
                        values[p] = XT[feature, s]
                else:
                    n_ties = 0
                    if has_ties[feature]:
                        n_ties = _active_tie_groups(feature, tag, node_tag, target, row_id, tie_feature_ptr,
                                                    tie_group_ptr, tie_members, XT, tie_values)
                    if n_ties > 0:
                        # where the groups sit in the node's sorted order
                        for t in range(n_ties):
                            lo = start
                            hi = end
                            while lo < hi:
                                mid = (lo + hi) // 2
                                if XT[feature, sorted_seg[feature, mid]] < tie_values[t]:
                                    lo = mid + 1
                                else:
                                    hi = mid
                            tie_positions[t] = lo
                        for p in range(start, end):
                            values[p] = XT[feature, samples[p]]
                        _introsort_where_tied(values, samples, start, n_node, XT, feature, sorted_seg[feature],
                                              tie_positions, n_ties)
                    else:
                        for p in range(start, end):
                            s = sorted_seg[feature, p]
                            samples[p] = s
                            values[p] = XT[feature, s]
                if values[end - 1] <= values[start] + _FEATURE_THRESHOLD:
                    t = features[f_j]
                    features[f_j] = features[n_total_constants]
                    features[n_total_constants] = t
                    n_found_constants += 1
                    n_total_constants += 1
                    continue
                f_i -= 1
                t = features[f_i]
                features[f_i] = features[f_j]
                features[f_j] = t

                pos = start
                sum_left = 0.0
                p = start
                while p < end:
                    p += 1
                    while p < end and values[p] <= values[p - 1] + _FEATURE_THRESHOLD:
                        p += 1
                    if p >= end:
                        break
                    # _sum_left_at, written out: called here it costs three times the sum itself
                    if (p - pos) <= (end - p):
                        for q in range(pos, p):
                            sum_left += y[samples[q]]
                    else:
                        sum_left = sum_total
                        for q in range(end - 1, p - 1, -1):
                            sum_left -= y[samples[q]]
                    pos = p
                    w_left = float(p - start)
                    w_right = w_node - w_left
                    sum_right = sum_total - sum_left
                    proxy = sum_left * sum_left / w_left + sum_right * sum_right / w_right
                    if proxy > best_proxy:
                        best_proxy = proxy
                        best_pos = p
                        best_feature = feature
                        best_threshold = np.float64(values[p - 1]) / 2.0 + np.float64(values[p]) / 2.0

            improvement = -np.inf
            if best_pos < end:
                # ---- partition samples[start:end] around the threshold (two pointers) ----
                lo = start
                hi = end
                while lo < hi:
                    if np.float64(XT[best_feature, samples[lo]]) <= best_threshold:
                        lo += 1
                    else:
                        hi -= 1
                        t = samples[lo]
                        samples[lo] = samples[hi]
                        samples[hi] = t
                sum_left = _sum_left_at(y, samples, start, end, start, best_pos, 0.0, sum_total)
                w_left = float(best_pos - start)
                w_right = w_node - w_left
                sum_right = sum_total - sum_left
                sq_left = 0.0
                for p in range(start, best_pos):
                    yi = y[samples[p]]
                    sq_left += yi * yi
                sq_right = sq_sum_total - sq_left
                mean_left = sum_left / w_left
                mean_right = sum_right / w_right
                imp_left = sq_left / w_left - mean_left * mean_left
                imp_right = sq_right / w_right - mean_right * mean_right
                improvement = (w_node / w_total) * (impurity - (w_right / w_node * imp_right)
                                                    - (w_left / w_node * imp_left))
            # constant-feature bookkeeping shared with the rest of the tree
            for i in range(n_known_constants):
                features[i] = constant_features[i]
            for i in range(n_known_constants, n_known_constants + n_found_constants):
                constant_features[i] = features[i]
            is_leaf = best_pos >= end or improvement + _EPSILON < 0.0

        node_id = node_count
        node_count += 1
        if parent >= 0:
            if is_left:
                node_left[parent] = node_id
            else:
                node_right[parent] = node_id
        node_impurity[node_id] = impurity
        node_weight[node_id] = w_node
        node_value[node_id] = sum_total / w_node
        if is_leaf:
            node_left[node_id] = _TREE_LEAF
            node_right[node_id] = _TREE_LEAF
            node_feature[node_id] = _UNDEFINED
            node_threshold[node_id] = _UNDEFINED
            for p in range(start, end):
                leaf_of[samples[p]] = node_id
            continue
        node_feature[node_id] = best_feature
        node_threshold[node_id] = best_threshold
        if depth + 1 < max_depth:
            # Keep every feature's sorted segment split the same way (stable partition).
            for p in range(start, best_pos):
                goes_left[samples[p]] = True
                node_tag[samples[p]] = 2 * node_id + 1
            for p in range(best_pos, end):
                goes_left[samples[p]] = False
                node_tag[samples[p]] = 2 * node_id + 2
            for f in range(n_features):
                a = start
                b = 0
                for p in range(start, end):
                    s = sorted_seg[f, p]
                    if goes_left[s]:
                        sorted_seg[f, a] = s
                        a += 1
                    else:
                        buffer[b] = s
                        b += 1
                for q in range(b):
                    sorted_seg[f, a + q] = buffer[q]
        # right child first on the stack, so the left one is grown first
        st_start[top] = best_pos
        st_end[top] = end
        st_depth[top] = depth + 1
        st_parent[top] = node_id
        st_is_left[top] = False
        st_impurity[top] = imp_right
        st_nconst[top] = n_total_constants
        st_tag[top] = 2 * node_id + 2
        top += 1
        st_start[top] = start
        st_end[top] = best_pos
        st_depth[top] = depth + 1
        st_parent[top] = node_id
        st_is_left[top] = True
        st_impurity[top] = imp_left
        st_nconst[top] = n_total_constants
        st_tag[top] = 2 * node_id + 1
        top += 1
    return node_count


# ---------------------------------------------------------------------------------------------------
# numpy's pairwise summation (what ``ndarray.mean`` uses), for the leaf values' averages.
# ---------------------------------------------------------------------------------------------------
@_jit
def _block_sum(a, lo, n):
    """numpy's sum of at most 128 values: eight interleaved accumulators, then the rest in order."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r = np.empty(8, np.float64)
    for j in range(8):
        r[j] = a[lo + j]
    i = 8
    stop = n - n % 8
    while i < stop:
        for j in range(8):
            r[j] += a[lo + i + j]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@_jit
def _pairwise_sum(a, lo, n):
    """numpy's pairwise sum of ``a[lo:lo + n]``: halves (cut at a multiple of 8) summed recursively.

    Written with explicit stacks, not recursion: numba's on-disk cache mishandles recursive functions.
    """
    frame_lo = np.empty(128, np.int64)
    frame_n = np.empty(128, np.int64)
    frame_combine = np.empty(128, np.bool_)
    sums = np.empty(128, np.float64)
    frame_lo[0] = lo
    frame_n[0] = n
    frame_combine[0] = False
    frames = 1
    n_sums = 0
    while frames > 0:
        frames -= 1
        f_lo = frame_lo[frames]
        f_n = frame_n[frames]
        if frame_combine[frames]:
            n_sums -= 1
            sums[n_sums - 1] = sums[n_sums - 1] + sums[n_sums]
        elif f_n <= 128:
            sums[n_sums] = _block_sum(a, f_lo, f_n)
            n_sums += 1
        else:
            half = f_n // 2
            half -= half % 8
            frame_combine[frames] = True  # after both halves: add them (left + right)
            frames += 1
            frame_lo[frames] = f_lo + half
            frame_n[frames] = f_n - half
            frame_combine[frames] = False
            frames += 1
            frame_lo[frames] = f_lo
            frame_n[frames] = half
            frame_combine[frames] = False
            frames += 1
    return sums[0]


@_jit
def _average(a):
    """``np.average(a, weights=np.ones(len(a)))`` of a contiguous float64 vector, bit for bit."""
    return _pairwise_sum(a, 0, a.shape[0]) / a.shape[0]


@_jit
def _fit_one_tree(XT, neg_gradient, y_true, k, presorted, has_ties, tie_feature_ptr, tie_group_ptr, tie_members,
                  row_id, root_orders, root_slot, seed, max_depth, learning_rate, factor,
                  raw, node_left, node_right, node_feature, node_threshold, node_impurity, node_weight,
                  node_value):
    """Tree ``k`` of a stage: grow it on the negative gradient, set its leaves by one Newton step, add it."""
    n = XT.shape[1]
    y = np.ascontiguousarray(neg_gradient[:, k])
    leaf_of = np.empty(n, np.int64)
    node_count = _build_tree(XT, y, y_true, presorted, has_ties, tie_feature_ptr, tie_group_ptr, tie_members,
                             row_id, root_orders, root_slot, seed, max_depth, node_left, node_right, node_feature,
                             node_threshold, node_impurity, node_weight, node_value, leaf_of)
    # Leaf values (samples of each leaf in index order, as numpy would gather them).
    counts = np.zeros(node_count, np.int64)
    for i in range(n):
        counts[leaf_of[i]] += 1
    offsets = np.zeros(node_count + 1, np.int64)
    for node in range(node_count):
        offsets[node + 1] = offsets[node] + counts[node]
    fill = offsets[:-1].copy()
    order = np.empty(n, np.int64)
    for i in range(n):
        node = leaf_of[i]
        order[fill[node]] = i
        fill[node] += 1
    for node in range(node_count):
        if node_left[node] != _TREE_LEAF:
            continue
        m = counts[node]
        neg_g = np.empty(m, np.float64)
        hess = np.empty(m, np.float64)
        for j in range(m):
            i = order[offsets[node] + j]
            g = y[i]
            prob = y_true[i] - g
            neg_g[j] = g
            hess[j] = prob * (1.0 - prob)
        numerator = _average(neg_g) * factor
        denominator = _average(hess)
        node_value[node] = 0.0 if abs(denominator) < 1e-150 else numerator / denominator
    for i in range(n):
        raw[i, k] += learning_rate * node_value[leaf_of[i]]
    return node_count


@_jit
def _neg_gradient_multinomial(y, raw):
    n, n_classes = raw.shape
    out = np.empty((n, n_classes), np.float64)
    p = np.empty(n_classes, np.float64)
    for i in range(n):
        max_value = raw[i, 0]
        for k in range(1, n_classes):
            if max_value < raw[i, k]:
                max_value = raw[i, k]
        sum_exps = 0.0
        for k in range(n_classes):
            p[k] = math.exp(raw[i, k] - max_value)
            sum_exps += p[k]
        for k in range(n_classes):
            out[i, k] = -(p[k] / sum_exps - (1.0 if y[i] == k else 0.0))
    return out


@_jit
def _neg_gradient_binomial(y, raw):
    n = raw.shape[0]
    out = np.empty((n, 1), np.float64)
    for i in range(n):
        r = raw[i, 0]
        if r > -37.0:
            e = math.exp(-r)
            out[i, 0] = -(((1.0 - y[i]) - y[i] * e) / (1.0 + e))
        else:
            out[i, 0] = -(math.exp(r) - y[i])
    return out


@_jit
def _predict_raw(X, init_raw, learning_rate, node_count, node_left, node_right, node_feature, node_threshold,
                 node_value):
    """Raw scores ``(n, trees per stage)``: the initial ones plus every tree's scaled leaf value, in order."""
    n = X.shape[0]
    n_stages, n_trees = node_count.shape
    out = np.empty((n, n_trees), np.float64)
    for i in range(n):
        for k in range(n_trees):
            out[i, k] = init_raw[k]
    for stage in range(n_stages):
        for k in range(n_trees):
            for i in range(n):
                node = 0
                while node_left[stage, k, node] != _TREE_LEAF:
                    if np.float64(X[i, node_feature[stage, k, node]]) <= node_threshold[stage, k, node]:
                        node = node_left[stage, k, node]
                    else:
                        node = node_right[stage, k, node]
                out[i, k] += learning_rate * node_value[stage, k, node]
    return out


@_jit
def _tree_importances(node_count, node_left, node_right, node_feature, node_impurity, node_weight,
                      n_features):
    """Unnormalised impurity decrease per feature of one tree, divided by the root's weight."""
    out = np.zeros(n_features, np.float64)
    for node in range(node_count):
        left = node_left[node]
        if left != _TREE_LEAF:
            right = node_right[node]
            out[node_feature[node]] += (node_weight[node] * node_impurity[node]
                                        - node_weight[left] * node_impurity[left]
                                        - node_weight[right] * node_impurity[right])
    for f in range(n_features):
        out[f] /= node_weight[0]
    return out


# ---------------------------------------------------------------------------------------------------
# The classifier.
# ---------------------------------------------------------------------------------------------------
@dataclass
class BoostedTrees:
    """A fitted boosted-tree classifier: ``classes``, initial raw scores and the trees' node arrays."""

    classes: np.ndarray
    init_raw: np.ndarray
    learning_rate: float
    node_count: np.ndarray  # (stages, trees per stage)
    left: np.ndarray  # (stages, trees per stage, max nodes)
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    impurity: np.ndarray
    weight: np.ndarray
    value: np.ndarray
    train_raw: np.ndarray  # raw scores of the training points after the last stage

    @property
    def feature_importances(self) -> np.ndarray:
        """Mean over trees with a split of each tree's importances, normalised to sum 1 (sklearn's rule)."""
        n_features = int(self._n_features)
        rows = [_tree_importances(int(self.node_count[s, k]), self.left[s, k], self.right[s, k],
                                  self.feature[s, k], self.impurity[s, k], self.weight[s, k], n_features)
                for s in range(self.node_count.shape[0]) for k in range(self.node_count.shape[1])
                if self.node_count[s, k] > 1]
        if not rows:
            return np.zeros(n_features, dtype=np.float64)
        average = np.mean(rows, axis=0, dtype=np.float64)
        return average / np.sum(average)

    _n_features: int = 0

    def decision(self, raw: np.ndarray) -> np.ndarray:
        """Class labels from raw scores: ``raw >= 0`` for two classes, else the first largest score."""
        if raw.shape[1] == 1:
            return self.classes[(raw[:, 0] >= 0).astype(int)]
        return self.classes[np.argmax(raw, axis=1)]

    def predict(self, X: np.ndarray) -> np.ndarray:
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        raw = _predict_raw(X32, self.init_raw, self.learning_rate, self.node_count, self.left, self.right,
                           self.feature, self.threshold, self.value)
        return self.decision(raw)


@dataclass
class TieGroups:
    """Groups of equal values of each feature whose samples are not all interchangeable.

    Two samples with the same code (bit for bit) and the same label get the same residual in every
    tree at every stage (their predictions are equal), so every comparison and every sum sees the same
    numbers whichever comes first: ties between such samples (duplicated images, the common case)
    leave the sorted order unique for all that matters. Only ties between samples a tree can tell
    apart (a float32 collision of two different codes, or one code with two labels, such as dSprites'
    orientations 0 and 2 pi) make scikit-learn's introsort decide an order, and only those are kept.
    ``feature_ptr``/``group_ptr``/``members`` are CSR arrays (per feature its groups, per group its
    samples); ``row_id[i]`` numbers the distinct codes.
    """

    row_id: np.ndarray
    feature_ptr: np.ndarray
    group_ptr: np.ndarray
    members: np.ndarray

    @classmethod
    def of(cls, X32: np.ndarray, presorted: np.ndarray, labels: np.ndarray) -> "TieGroups":
        n, n_features = X32.shape
        _, row_id = np.unique(np.ascontiguousarray(X32).view(np.uint32), axis=0, return_inverse=True)
        row_id = row_id.reshape(n).astype(np.int64)
        feature_ptr, group_ptr, members = [0], [0], []
        for f in range(n_features):
            order = presorted[f]
            column = X32[order, f]
            key = row_id[order] * (int(labels.max()) + 1) + labels[order]
            bounds = np.flatnonzero(np.r_[True, column[1:] != column[:-1], True])
            repeated = np.diff(bounds) > 1  # only values held by two or more samples can be ties
            for lo, hi in zip(bounds[:-1][repeated], bounds[1:][repeated]):
                if np.any(key[lo + 1:hi] != key[lo]):
                    members.extend(order[lo:hi])
                    group_ptr.append(len(members))
            feature_ptr.append(len(group_ptr) - 1)
        return cls(row_id, np.array(feature_ptr, np.int64), np.array(group_ptr, np.int64),
                   np.array(members, np.int64))

    def effective(self, targets: list[np.ndarray]) -> np.ndarray:
        """``(len(targets), F)``: has feature ``f`` a group that tree ``k`` (fitting ``targets[k]``) can
        tell apart?"""
        n_features = len(self.feature_ptr) - 1
        ties = np.zeros((len(targets), n_features), np.bool_)
        for k, target in enumerate(targets):
            key = self.row_id * 2 + (target != 0)
            for f in range(n_features):
                for g in range(self.feature_ptr[f], self.feature_ptr[f + 1]):
                    group_keys = key[self.members[self.group_ptr[g]:self.group_ptr[g + 1]]]
                    if np.any(group_keys != group_keys[0]):
                        ties[k, f] = True
                        break
        return ties


@_jit
def _root_visits(seed, is_constant):
    """The features the builder sorts at the root of a tree, in order: its feature draws there, which
    depend only on the tree's seed and on which features are constant over all samples."""
    n_features = is_constant.shape[0]
    features = np.arange(n_features)
    visits = np.empty(2 * n_features, np.int64)
    n_out = 0
    state = np.empty(1, np.int64)
    state[0] = seed
    f_i = n_features
    n_visited = 0
    n_found_constants = 0
    while f_i > n_found_constants and (n_visited < n_features or n_visited <= n_found_constants):
        n_visited += 1
        f_j = _rand_int(0, f_i - n_found_constants, state) + n_found_constants
        feature = features[f_j]
        visits[n_out] = feature
        n_out += 1
        if is_constant[feature]:
            features[f_j] = features[n_found_constants]
            features[n_found_constants] = feature
            n_found_constants += 1
            continue
        f_i -= 1
        t = features[f_i]
        features[f_i] = features[f_j]
        features[f_j] = t
    return visits[:n_out]


class RootOrders:
    """The root's sample orders after scikit-learn's introsort, shared by every tree fitted on the codes.

    At the root every tree sorts all samples by every feature, in the order of its feature draws, each
    sort starting from the order the previous one left. Where a feature has ties between samples the
    tree can tell apart, the result depends on that chain of sorts back to the last feature without
    such ties (whose sorted order is unique), but not on the tree's residuals; so each chain is sorted
    once and kept (up to ``max_bytes``), and a tree looks its root orders up instead of sorting.
    """

    def __init__(self, XT: np.ndarray, presorted: np.ndarray, ties: TieGroups, max_bytes: int = 128 << 20):
        self.XT, self.presorted = XT, presorted
        n_features, n = XT.shape
        values = np.take_along_axis(XT, presorted, axis=1)  # each feature's values in sorted order
        self.is_constant = values[:, -1] <= values[:, 0] + _FEATURE_THRESHOLD
        # Where every kept tie group of a feature sits in its sorted order: the sorts honour them all.
        self.tie_positions = []
        for f in range(n_features):
            groups = ties.members[ties.group_ptr[ties.feature_ptr[f]:ties.feature_ptr[f + 1]]]
            self.tie_positions.append(np.searchsorted(values[f], XT[f, groups]).astype(np.int64))
        self.capacity = max(1, max_bytes // (4 * n))
        self.orders = np.empty((min(self.capacity, 64), n), np.int32)
        self.slots: dict[tuple, int] = {}
        self._scratch = np.empty(n, np.int64)
        self._values = np.empty(n, np.float32)

    def slots_for(self, seed: int, tied: np.ndarray) -> np.ndarray:
        """Per feature, the row of :attr:`orders` holding the root's order after sorting it (-1: none),
        for the tree with splitter seed ``seed`` whose features ``tied`` need scikit-learn's sort."""
        slot_of = np.full(self.XT.shape[0], -1, np.int64)
        # A chain names the order a sort starts from: the samples' own order at the start of the root,
        # or a feature's unique sorted order, then the tied features sorted since, in turn.
        chain: tuple = ("start",)
        previous = -1  # the row of the order the next sort starts from (-1: the chain's first order)
        for feature in _root_visits(seed, self.is_constant):
            feature = int(feature)
            if not tied[feature]:
                chain, previous = ("sorted", feature), -1
                continue
            chain = chain + (feature,)
            slot = self.slots.get(chain)
            if slot is None:
                if len(self.slots) >= self.capacity:
                    return slot_of  # full: the rest of this root is sorted by the builder itself
                order = self._scratch
                if previous >= 0:
                    order[:] = self.orders[previous]
                elif chain[0] == "sorted":
                    order[:] = self.presorted[chain[1]]
                else:
                    order[:] = np.arange(order.shape[0])
                values = self._values
                np.take(self.XT[feature], order, out=values)
                positions = self.tie_positions[feature]
                _introsort_where_tied(values, order, 0, order.shape[0], self.XT, feature, self.presorted[feature],
                                      positions, positions.shape[0])
                slot = len(self.slots)
                if slot == self.orders.shape[0]:
                    grown = np.empty((min(self.capacity, 2 * slot), self.XT.shape[1]), np.int32)
                    grown[:slot] = self.orders
                    self.orders = grown
                self.orders[slot] = order
                self.slots[chain] = slot
            slot_of[feature] = slot
            previous = slot
        return slot_of


@dataclass
class Codes:
    """The training codes prepared once for every boosted classifier fitted on them (one per factor).

    ``labels`` (integers, one per sample) must separate every two samples that any of those fits tells
    apart: the factor's classes for one fit, or an id of the whole factor vector for all of DCI's.
    """

    X32: np.ndarray
    labels: np.ndarray
    XT: np.ndarray
    presorted: np.ndarray
    ties: TieGroups
    root_orders: RootOrders

    @classmethod
    def of(cls, X: np.ndarray, labels: np.ndarray, root_orders_bytes: int = 128 << 20) -> "Codes":
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        if X32.ndim != 2 or X32.shape[0] != len(labels) or X32.shape[0] == 0:
            raise ValueError(f"X must be (n, F) with n = len(y) > 0, got {X32.shape} and {len(labels)} labels")
        if not np.all(np.isfinite(X32)):
            raise ValueError("X must be finite (after conversion to float32)")
        labels = np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1).astype(np.int64)
        XT = np.ascontiguousarray(X32.T)
        presorted = np.stack([np.argsort(X32[:, f], kind="stable") for f in range(X32.shape[1])])
        ties = TieGroups.of(X32, presorted, labels)
        return cls(X32, labels, XT, presorted, ties, RootOrders(XT, presorted, ties, root_orders_bytes))

    def check(self, X: np.ndarray, y: np.ndarray) -> None:
        """Raise unless ``X`` is these codes and ``y`` is a function of :attr:`labels`."""
        X32 = np.asarray(X, dtype=np.float32)
        if X32.shape != self.X32.shape or len(y) != len(self.labels) or not np.array_equal(X32, self.X32):
            raise ValueError("codes were prepared from other samples than X")
        pairs = np.unique(np.column_stack([self.labels, y]), axis=0)
        if len(pairs) != len(np.unique(self.labels)):
            raise ValueError("codes were prepared with labels that do not separate y's classes")


def _thread_count(n_threads: int | None) -> int:
    return max(1, int(n_threads)) if n_threads is not None else usable_cores()


def fit(X: np.ndarray, y: np.ndarray, random_state: int, *, n_estimators: int = 100,
        learning_rate: float = 0.1, max_depth: int = 3, n_threads: int | None = None,
        codes: Codes | None = None) -> BoostedTrees:
    """Fit ``GradientBoostingClassifier(random_state=random_state)`` (defaults) on ``X (n, F)``, ``y (n,)``.

    ``random_state`` is an int, as the seed of ``numpy.random.RandomState``. ``n_threads`` (default: the
    usable cores) only changes the speed. ``codes``: ``X`` prepared by :meth:`Codes.of` for several fits
    (speed only). Needs at least two classes.
    """
    classes, y_encoded = np.unique(np.asarray(y), return_inverse=True)
    y_encoded = y_encoded.reshape(-1)
    if codes is None:
        codes = Codes.of(X, y_encoded)
    else:
        codes.check(X, y_encoded)
    X32 = codes.X32
    n_classes = classes.shape[0]
    if n_classes < 2:
        raise ValueError("gradient boosting needs at least two classes")
    n, n_features = X32.shape
    y_float = y_encoded.astype(np.float64)

    # Initial model: class priors, as raw scores (logit for two classes, symmetric log for more).
    counts = np.bincount(y_encoded)
    prior = counts / counts.sum()
    eps = np.finfo(np.float64).eps
    proba = np.clip(np.tile(prior, (n, 1)), eps, 1 - eps, dtype=np.float64)
    if n_classes == 2:
        raw = scipy.special.logit(proba[:, 1]).reshape(-1, 1)
        n_trees = 1
        factor = 1.0
    else:
        raw = np.log(proba / scipy.stats.gmean(proba, axis=1)[:, None])
        n_trees = n_classes
        factor = (n_classes - 1) / n_classes
    raw = np.ascontiguousarray(raw, dtype=np.float64)
    init_raw = raw[0].copy()

    XT, presorted, ties, root_orders = codes.XT, codes.presorted, codes.ties, codes.root_orders
    targets = [(y_encoded == k).astype(np.float64) for k in range(n_trees)] if n_trees > 1 else [y_float]
    has_ties = ties.effective(targets)

    max_nodes = 2 ** (max_depth + 1) - 1
    shape = (n_estimators, n_trees, max_nodes)
    model = BoostedTrees(classes=classes, init_raw=init_raw, learning_rate=float(learning_rate),
                         node_count=np.zeros((n_estimators, n_trees), np.int64),
                         left=np.full(shape, _TREE_LEAF, np.int64), right=np.full(shape, _TREE_LEAF, np.int64),
                         feature=np.full(shape, _UNDEFINED, np.int64), threshold=np.zeros(shape),
                         impurity=np.zeros(shape), weight=np.zeros(shape), value=np.zeros(shape),
                         train_raw=raw, _n_features=n_features)
    # Every tree's splitter seed comes from one RandomState, one draw per tree in order.
    rng = np.random.RandomState(random_state)
    workers = min(_thread_count(n_threads), n_trees)

    def grow(stage: int, k: int, neg_gradient: np.ndarray, seed: int, orders: np.ndarray,
             root_slot: np.ndarray) -> None:
        model.node_count[stage, k] = _fit_one_tree(
            XT, neg_gradient, targets[k], k, presorted, has_ties[k], ties.feature_ptr, ties.group_ptr,
            ties.members, ties.row_id, orders, root_slot, seed, max_depth, float(learning_rate),
            factor, raw, model.left[stage, k], model.right[stage, k], model.feature[stage, k],
            model.threshold[stage, k], model.impurity[stage, k], model.weight[stage, k],
            model.value[stage, k])

    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        for stage in range(n_estimators):
            if n_trees == 1:
                neg_gradient = _neg_gradient_binomial(y_float, raw)
            else:
                neg_gradient = _neg_gradient_multinomial(y_float, raw)
            seeds = [int(rng.randint(0, RAND_R_MAX)) for _ in range(n_trees)]
            # Root orders first (this may grow the table), then the trees, which only read it.
            slots = [root_orders.slots_for(seed, has_ties[k]) for k, seed in enumerate(seeds)]
            args = [(stage, k, neg_gradient, seeds[k], root_orders.orders, slots[k]) for k in range(n_trees)]
            first = 0
            if pool is None or stage == 0:
                # The very first tree is grown here: numba compiles (or loads its cache) on the first call,
                # which must not happen in several threads at once.
                grow(*args[0])
                first = 1
            if pool is None:
                for k in range(first, n_trees):
                    grow(*args[k])
            else:
                # Tree k writes only raw[:, k] and its own node arrays: independent within a stage.
                futures = [pool.submit(grow, *args[k]) for k in range(first, n_trees)]
                for future in futures:
                    future.result()
    finally:
        if pool is not None:
            pool.shutdown()
    return model


def fit_predict(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, random_state: int,
                n_threads: int | None = None, codes: Codes | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature importances, train predictions and test predictions of the default boosted classifier."""
    model = fit(X_train, y_train, random_state, n_threads=n_threads, codes=codes)
    return model.feature_importances, model.decision(model.train_raw), model.predict(X_test)
