//! Text bound for the operator's terminal: remote text (AWS messages, file names) is stripped of
//! control characters so that nothing can rewrite the screen. Shared by every stage's output, so
//! it sits below them all (no stage imports it through `error`).

/// Replaces control characters (other than newline and tab) with `?`.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_terminal_escapes() {
        assert_eq!(sanitize("a\u{1b}[2Jb\r"), "a?[2Jb?");
        assert_eq!(sanitize("line\nnext\ttab"), "line\nnext\ttab");
    }
}
