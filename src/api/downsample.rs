//! Downsampling long metric series for reading: largest-triangle-three-buckets (Steinarsson 2013),
//! which keeps the first and last points and, per bucket, the point that best preserves the
//! curve's shape (spikes and dips survive, unlike taking every k-th point).

/// Indices of at most `max_points` of `xy` (sorted by x) to keep. Everything when it already fits.
pub fn lttb(xy: &[(f64, f64)], max_points: usize) -> Vec<usize> {
    let n = xy.len();
    if max_points >= n || n <= 2 {
        return (0..n).collect();
    }
    match max_points {
        0 | 1 => return vec![0],
        2 => return vec![0, n - 1],
        _ => {}
    }
    let buckets = max_points - 2;
    let width = (n - 2) as f64 / buckets as f64;
    let mut kept = Vec::with_capacity(max_points);
    kept.push(0);
    let mut previous = 0;
    for b in 0..buckets {
        let start = 1 + (b as f64 * width) as usize;
        let end = (1 + ((b + 1) as f64 * width) as usize).min(n - 1);
        // The next bucket's average is the third corner of the triangle (the last point for the
        // last bucket).
        let next_start = end;
        let next_end = (1 + ((b + 2) as f64 * width) as usize).min(n - 1);
        let (ax, ay) = if b + 1 == buckets || next_start >= next_end {
            xy[n - 1]
        } else {
            let count = (next_end - next_start) as f64;
            let (sx, sy) = xy[next_start..next_end]
                .iter()
                .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
            (sx / count, sy / count)
        };
        let (px, py) = xy[previous];
        let mut best = start;
        let mut best_area = -1.0;
        for (i, &(x, y)) in xy.iter().enumerate().take(end.max(start + 1)).skip(start) {
            let area = ((px - ax) * (y - py) - (px - x) * (ay - py)).abs();
            if area > best_area {
                best_area = area;
                best = i;
            }
        }
        kept.push(best);
        previous = best;
    }
    kept.push(n - 1);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_are_kept_whole() {
        let xy: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, i as f64)).collect();
        assert_eq!(lttb(&xy, 10), vec![0, 1, 2, 3, 4]);
        assert_eq!(lttb(&xy, 5), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn long_series_keep_ends_size_order_and_a_spike() {
        let mut xy: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, 1.0)).collect();
        xy[4_321].1 = 50.0;
        let kept = lttb(&xy, 100);
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[0], 0);
        assert_eq!(*kept.last().unwrap(), 9_999);
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "indices ascend");
        assert!(kept.contains(&4_321), "the spike survives");
    }

    #[test]
    fn tiny_budgets_are_honoured() {
        let xy: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, (i * i) as f64)).collect();
        assert_eq!(lttb(&xy, 2), vec![0, 49]);
        assert_eq!(lttb(&xy, 1), vec![0]);
        assert_eq!(lttb(&xy, 3).len(), 3);
    }
}
