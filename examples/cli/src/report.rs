//! Small helpers the CLI's commands share: parsing sizes and summarising measurements.

/// Parses `WIDTHxHEIGHT` (e.g. `1920x1080`).
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, got `{s}`"))?;
    let w = w.trim().parse().map_err(|e| format!("width: {e}"))?;
    let h = h.trim().parse().map_err(|e| format!("height: {e}"))?;
    Ok((w, h))
}

/// The `p` quantile (0–1) of already sorted values, nearest rank; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The screen a command shares: the synthetic desktop when `synthetic` (`--synthetic`), else the X11 screen when a
/// display is there, else the synthetic desktop.
pub fn screen_choice(synthetic: bool, (width, height): (u32, u32), fps: u32) -> peerdesk::capture::ScreenChoice {
    use peerdesk::capture::ScreenChoice;
    if synthetic {
        ScreenChoice::Synthetic { width, height, fps }
    } else {
        ScreenChoice::X11OrSynthetic { width, height, fps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_percentiles() {
        assert_eq!(parse_size("1920x1080"), Ok((1920, 1080)));
        assert!(parse_size("1920").is_err());
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
