//! Rule errors a person can read: DataFusion's and the SQL parser's messages without their
//! wrapping (`SQL error: ParserError("…")`, `Error during planning: …`, debug dumps), and,
//! for a construct from another engine's dialect, what to write instead.

/// Functions of the AWS IoT, EMQX and Azure IoT Hub rule languages that Sluice spells
/// differently, or does not have: (name, what to write instead).
const OTHER_DIALECTS: &[(&str, &str)] = &[
    ("newuuid", "uuid()"),
    ("startswith", "starts_with(text, prefix)"),
    ("endswith", "ends_with(text, suffix)"),
    ("starts_with_ci", "starts_with(lower(text), lower(prefix))"),
    (
        "get",
        "an index, array[i] (from 1), or a path, object.field",
    ),
    ("nth", "array[n] (from 1)"),
    ("str", "CAST(x AS VARCHAR)"),
    ("int", "CAST(x AS BIGINT)"),
    ("float", "CAST(x AS DOUBLE)"),
    ("bool", "CAST(x AS BOOLEAN)"),
    ("parse_time", "to_char(to_timestamp_millis(ms), format)"),
    (
        "json_decode",
        "the field itself: payload fields are already columns",
    ),
    (
        "sha1",
        "digest(x, 'sha256') or md5(x) (SHA-1 is not available)",
    ),
    ("is_null", "x IS NULL"),
    ("is_not_null", "x IS NOT NULL"),
    (
        "accountid",
        "nothing: a rule sees the message, its topic and device_tag()",
    ),
    (
        "principal",
        "nothing: a rule sees the message, its topic and device_tag()",
    ),
    (
        "traceid",
        "nothing: a rule sees the message, its topic and device_tag()",
    ),
    (
        "get_thing_shadow",
        "device_tag('name') with the devices table",
    ),
];

/// One sentence for `message` (DataFusion's), with a suggestion where one is known.
pub fn readable(message: &str) -> String {
    let mut m = message.replace('\n', " ");
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "Optimizer rule ",
        "type_coercion caused by ",
    ] {
        m = m.replace(prefix, "");
    }
    m = unwrap_parser_error(&m);
    m = m.replace("This feature is not implemented: ", "not supported: ");
    m = literals(&m).replace("telemetry.", "");
    if m.contains("Ident {") || m.contains("Identifier(") {
        m = "this kind of field access is not supported; write a path such as a.b[1].c".into();
    }
    if let Some(name) = unknown_function(&m) {
        if let Some((_, instead)) = OTHER_DIALECTS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            m = format!("unknown function '{name}': write {instead}");
        } else {
            // DataFusion's "Did you mean" picks among equally close names in hash order, so it
            // changed between runs (`concat`, `translate`): the message names the function only.
            m = format!("unknown function '{name}'");
        }
    }
    m.trim_end_matches(['.', ' ']).to_string()
}

/// DataFusion's debug form of literals (`Int64(1)`, `Utf8("x")`) as SQL writes them.
fn literals(m: &str) -> String {
    static LITERAL: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = LITERAL.get_or_init(|| {
        regex::Regex::new(r#"\b(?:Int|UInt|Float)(?:8|16|32|64)\(([^()]*)\)|\bUtf8\("([^"]*)"\)"#)
            .expect("valid regex")
    });
    re.replace_all(m, |c: &regex::Captures| match (c.get(1), c.get(2)) {
        (Some(n), _) => n.as_str().to_string(),
        (_, Some(t)) => format!("'{}'", t.as_str()),
        _ => String::new(),
    })
    .into_owned()
}

/// `SQL error: ParserError("Expected: …")` → `syntax error: Expected: …`.
fn unwrap_parser_error(m: &str) -> String {
    let Some(start) = m.find("ParserError(\"") else {
        return m.replace("SQL error: ", "");
    };
    let inner = &m[start + "ParserError(\"".len()..];
    let inner = inner.rsplit_once("\")").map_or(inner, |(i, _)| i);
    format!("syntax error: {}", inner.replace("\\\"", "\""))
}

/// The name in `Invalid function 'name'`.
fn unknown_function(m: &str) -> Option<String> {
    let rest = m.split("Invalid function '").nth(1)?;
    Some(rest.split('\'').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn parser_errors_lose_their_debug_wrapping() {
        assert_eq!(
            readable(
                r#"SQL error: ParserError("Expected: end of statement, found: FORM at Line: 3, Column: 6")"#
            ),
            "syntax error: Expected: end of statement, found: FORM at Line: 3, Column: 6"
        );
    }

    #[test]
    fn functions_of_other_dialects_say_what_to_write() {
        let m =
            readable("Error during planning: Invalid function 'newuuid'.\nDid you mean 'uuid'?");
        assert_eq!(m, "unknown function 'newuuid': write uuid()");
        let m = readable(
            "Error during planning: Invalid function 'frobnicate'.\nDid you mean 'btrim'?",
        );
        assert_eq!(
            m, "unknown function 'frobnicate'",
            "no suggestion that changes between runs"
        );
    }

    #[test]
    fn literals_read_as_sql() {
        let m = readable(
            "Cannot create filter with non-boolean predicate 'v + Int64(1)' returning Int64",
        );
        assert_eq!(
            m,
            "Cannot create filter with non-boolean predicate 'v + 1' returning Int64"
        );
    }

    #[test]
    fn debug_dumps_never_reach_the_user() {
        let m = readable(
            r#"This feature is not implemented: Dot access not supported for non-string expr: Identifier(Ident { value: "Month", quote_style: None })"#,
        );
        assert!(!m.contains("Ident {"), "{m}");
    }
}
