//! Which regular expressions Envoy accepts. Envoy compiles every `safe_regex` with
//! Google's RE2 and refuses the whole configuration when one does not compile, so a
//! route's regex is checked here first, to point at the fixture line instead.
//!
//! The `regex` crate's syntax is close to RE2's (no lookaround, no backreferences,
//! the same escapes and classes), so a pattern it refuses RE2 refuses too. Where the
//! crate accepts more, the difference is refused explicitly (RE2's syntax:
//! `doc/syntax.txt` in google/re2):
//! - the flags `x`, `u` and `R` (RE2 knows `i`, `m`, `s` and `U`);
//! - character class set operations (`[a-z&&[^m]]`, `--`, `~~`) and nested classes
//!   (`[a[bc]]`: RE2 reads the inner `[` as a literal);
//! - the word boundaries `\b{start}`, `\b{end}`, `\<`, `\>` and their half forms;
//! - `\u`/`\U` escapes (RE2 has `\x{...}`), and `\p{name=value}` properties;
//! - repetition counts above 1000 (RE2's maximum), and a repetition operator right
//!   after another (`a**`).
//!
//! Not modelled: RE2's program-size limit (Envoy refuses a regex whose compiled program
//! is larger than its `re2.max_program_size.error_level` runtime value, 100 by default),
//! and the Unicode property names only the crate knows (`\p{Alphabetic}`); Envoy's
//! refusal at start-up names those.

use regex_syntax::ast::{self, Ast, Visitor};

/// Why Envoy would refuse a regex.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Re2Error {
    #[error("`{pattern}` is not a valid regular expression: {reason}")]
    Syntax { pattern: String, reason: String },
    #[error("`{pattern}` uses {what}, which RE2 (Envoy's regex engine) does not support")]
    NotRe2 { pattern: String, what: &'static str },
}

/// Checks that RE2 would compile `pattern` as the crate reads it.
pub fn check(pattern: &str) -> Result<(), Re2Error> {
    let syntax = |reason: String| Re2Error::Syntax {
        pattern: pattern.to_string(),
        reason,
    };
    let parsed = ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|e| syntax(e.kind().to_string()))?;
    // The translation to the crate's HIR finds what the AST alone does not (unknown
    // Unicode classes, invalid ranges).
    regex_syntax::hir::translate::Translator::new()
        .translate(pattern, &parsed)
        .map_err(|e| syntax(e.kind().to_string()))?;
    ast::visit(&parsed, OnlyRe2).map_err(|what| Re2Error::NotRe2 {
        pattern: pattern.to_string(),
        what,
    })
}

/// RE2's maximum repetition count (`kMaxRepeat` in google/re2 `re2/parse.cc`).
const MAX_REPEAT: u32 = 1000;

struct OnlyRe2;

impl OnlyRe2 {
    fn flags(flags: &ast::Flags) -> Result<(), &'static str> {
        for item in &flags.items {
            if let ast::FlagsItemKind::Flag(
                ast::Flag::IgnoreWhitespace | ast::Flag::Unicode | ast::Flag::CRLF,
            ) = item.kind
            {
                return Err("a flag other than i, m, s and U");
            }
        }
        Ok(())
    }
}

impl Visitor for OnlyRe2 {
    type Output = ();
    type Err = &'static str;

    fn finish(self) -> Result<(), &'static str> {
        Ok(())
    }

    fn visit_pre(&mut self, ast: &Ast) -> Result<(), &'static str> {
        match ast {
            Ast::Flags(set) => OnlyRe2::flags(&set.flags),
            Ast::Group(group) => match &group.kind {
                ast::GroupKind::NonCapturing(flags) => OnlyRe2::flags(flags),
                _ => Ok(()),
            },
            Ast::Assertion(assertion) => match assertion.kind {
                ast::AssertionKind::WordBoundaryStart
                | ast::AssertionKind::WordBoundaryEnd
                | ast::AssertionKind::WordBoundaryStartAngle
                | ast::AssertionKind::WordBoundaryEndAngle
                | ast::AssertionKind::WordBoundaryStartHalf
                | ast::AssertionKind::WordBoundaryEndHalf => {
                    Err("a start or end word boundary (\\b{start}, \\<, \\>)")
                }
                _ => Ok(()),
            },
            Ast::Literal(literal) => unicode_escape(literal),
            Ast::ClassUnicode(class) => unicode_class(class),
            // RE2 refuses a repetition operator right after another (`a**`, `a+{2}`,
            // "bad repetition operator"); the crate applies both.
            Ast::Repetition(repetition) if matches!(*repetition.ast, Ast::Repetition(_)) => {
                Err("a repetition operator right after another (a**)")
            }
            Ast::Repetition(repetition) => match &repetition.op.kind {
                ast::RepetitionKind::Range(
                    ast::RepetitionRange::Exactly(n)
                    | ast::RepetitionRange::AtLeast(n)
                    | ast::RepetitionRange::Bounded(_, n),
                ) if *n > MAX_REPEAT => Err("a repetition count above 1000"),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn visit_class_set_item_pre(&mut self, item: &ast::ClassSetItem) -> Result<(), &'static str> {
        match item {
            ast::ClassSetItem::Bracketed(_) => Err("a character class nested in another"),
            ast::ClassSetItem::Literal(literal) => unicode_escape(literal),
            ast::ClassSetItem::Unicode(class) => unicode_class(class),
            _ => Ok(()),
        }
    }

    fn visit_class_set_binary_op_pre(
        &mut self,
        _op: &ast::ClassSetBinaryOp,
    ) -> Result<(), &'static str> {
        Err("a character class set operation (&&, --, ~~)")
    }
}

fn unicode_escape(literal: &ast::Literal) -> Result<(), &'static str> {
    match literal.kind {
        ast::LiteralKind::HexFixed(
            ast::HexLiteralKind::UnicodeShort | ast::HexLiteralKind::UnicodeLong,
        )
        | ast::LiteralKind::HexBrace(
            ast::HexLiteralKind::UnicodeShort | ast::HexLiteralKind::UnicodeLong,
        ) => Err("a \\u or \\U escape (RE2 spells it \\x{...})"),
        _ => Ok(()),
    }
}

fn unicode_class(class: &ast::ClassUnicode) -> Result<(), &'static str> {
    match class.kind {
        ast::ClassUnicodeKind::NamedValue { .. } => Err("a \\p{name=value} property"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re2_syntax_is_accepted() {
        for pattern in [
            "/v[0-9]+/.*",
            "^/api/(users|items)$",
            "(?i)canary",
            "[[:alpha:]]+",
            r"\pL\p{Greek}\d\x{41}",
            "a{2,1000}",
            "(a*)*",
            "a*?",
            r"\bword\b",
        ] {
            assert_eq!(check(pattern), Ok(()), "{pattern}");
        }
    }

    #[test]
    fn what_neither_accepts_is_a_syntax_error() {
        for pattern in ["(", "[z-a]", r"(?=x)", r"(a)\1", "*"] {
            assert!(
                matches!(check(pattern), Err(Re2Error::Syntax { .. })),
                "{pattern}: {:?}",
                check(pattern)
            );
        }
    }

    #[test]
    fn what_only_the_crate_accepts_is_refused() {
        for pattern in [
            "(?x) a b",
            "(?u:a)",
            "[a-z&&[^m]]",
            "[a[bc]]",
            r"\b{start}x",
            r"\<x\>",
            r"\u0041",
            r"\p{sc=Greek}",
            "a{1001}",
            "a**",
            "a+{2}",
        ] {
            assert!(
                matches!(check(pattern), Err(Re2Error::NotRe2 { .. })),
                "{pattern}: {:?}",
                check(pattern)
            );
        }
    }
}
