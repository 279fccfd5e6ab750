//! The one place that decides how the terminal output looks.

/// How the terminal reporter writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DisplayConfig {
    /// Live progress bars (indicatif) instead of plain timestamped lines.
    pub progress_bars: bool,
    pub color: bool,
    /// Only failures and the summary.
    pub quiet: bool,
}

impl DisplayConfig {
    /// Progress bars need an interactive terminal and no CI log collecting them; a hidden
    /// bar prints nothing, so everywhere else we write plain lines. Color follows the
    /// terminal and `NO_COLOR` (<https://no-color.org>).
    pub fn choose(is_terminal: bool, is_ci: bool, quiet: bool, no_color: bool) -> Self {
        DisplayConfig {
            progress_bars: is_terminal && !is_ci && !quiet,
            color: is_terminal && !no_color,
            quiet,
        }
    }

    /// Reads the inputs of [`DisplayConfig::choose`] from the process environment.
    pub fn from_env(quiet: bool) -> Self {
        use std::io::IsTerminal;
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        DisplayConfig::choose(
            std::io::stderr().is_terminal(),
            set("CI"),
            quiet,
            set("NO_COLOR"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::DisplayConfig;

    #[test]
    fn progress_bars_only_on_an_interactive_terminal_outside_ci() {
        assert!(DisplayConfig::choose(true, false, false, false).progress_bars);
        assert!(!DisplayConfig::choose(false, false, false, false).progress_bars);
        assert!(!DisplayConfig::choose(true, true, false, false).progress_bars);
        assert!(!DisplayConfig::choose(true, false, true, false).progress_bars);
    }

    #[test]
    fn no_color_and_pipes_turn_color_off() {
        assert!(DisplayConfig::choose(true, true, false, false).color);
        assert!(!DisplayConfig::choose(true, false, false, true).color);
        assert!(!DisplayConfig::choose(false, false, false, false).color);
    }
}
