//! Nested field paths in rule SQL: `loc.lat` and `loc.sensors[1]` name the flat column
//! `"loc.lat"` / `"loc.sensors"` that the decoder produced (see `decode::flatten`). After an
//! array index, objects are Arrow structs: `.name` there becomes `path_field(…, 'name')`
//! ([`super::field`]), so `a.b[2].c`, `a[1][2]` and `a[1].b[3].c` work at any depth and read
//! NULL for anything missing or out of range.
//!
//! SQL would otherwise read `loc.lat` as column `lat` of a table `loc`. The rewrite runs on
//! the parsed statement, before planning, so a parse error still carries its position. A
//! leading `telemetry.` (or the table alias) is dropped: `t.loc.lat` is `loc.lat` too.

use datafusion_sql::sqlparser::ast::{
    visit_expressions_mut, AccessExpr, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, SetExpr, Statement, TableFactor,
    Value,
};
use std::ops::ControlFlow;

/// Rewrites every dotted field path in `stmt` to a quoted flat column name.
pub fn flatten_paths(stmt: &mut Statement, table: &str) {
    let aliases = table_names(stmt, table);
    let _ = visit_expressions_mut(stmt, |e| {
        rewrite(e, &aliases);
        ControlFlow::<()>::Continue(())
    });
}

/// The names the rule's source table goes by: `telemetry` and its alias, if any.
fn table_names(stmt: &Statement, table: &str) -> Vec<String> {
    let mut names = vec![table.to_string()];
    if let Statement::Query(q) = stmt {
        if let SetExpr::Select(s) = q.body.as_ref() {
            for t in &s.from {
                if let TableFactor::Table { alias: Some(a), .. } = &t.relation {
                    names.push(a.name.value.clone());
                }
            }
        }
    }
    names
}

fn rewrite(e: &mut Expr, tables: &[String]) {
    match e {
        Expr::CompoundIdentifier(parts) => {
            if let Some(flat) = flat_name(parts, tables) {
                *e = Expr::Identifier(flat);
            }
        }
        Expr::CompoundFieldAccess { root, access_chain } => {
            // `a.b[1]`: the root may be `a` with `.b` first in the chain, or already `a.b`.
            let mut parts = match root.as_ref() {
                Expr::Identifier(i) => vec![i.clone()],
                Expr::CompoundIdentifier(p) => p.clone(),
                _ => return,
            };
            let dots = access_chain
                .iter()
                .take_while(|a| matches!(a, AccessExpr::Dot(Expr::Identifier(_))))
                .count();
            for a in &access_chain[..dots] {
                if let AccessExpr::Dot(Expr::Identifier(i)) = a {
                    parts.push(i.clone());
                }
            }
            if let Some(flat) = flat_name(&parts, tables) {
                **root = Expr::Identifier(flat);
                access_chain.drain(..dots);
            }
            *e = fields_after_index((**root).clone(), std::mem::take(access_chain));
        }
        _ => {}
    }
}

/// `root` followed by `chain`, each `.name` (an object's field inside an array) made a
/// `path_field` call on what precedes it; runs of indexes stay an access chain.
fn fields_after_index(root: Expr, chain: Vec<AccessExpr>) -> Expr {
    let mut current = root;
    let mut pending: Vec<AccessExpr> = Vec::new();
    for access in chain {
        match access {
            AccessExpr::Dot(Expr::Identifier(name)) => {
                current = path_field(with_chain(current, std::mem::take(&mut pending)), name);
            }
            other => pending.push(other),
        }
    }
    with_chain(current, pending)
}

fn with_chain(root: Expr, chain: Vec<AccessExpr>) -> Expr {
    if chain.is_empty() {
        return root;
    }
    Expr::CompoundFieldAccess {
        root: Box::new(root),
        access_chain: chain,
    }
}

fn path_field(object: Expr, name: Ident) -> Expr {
    let arg = |e: Expr| FunctionArg::Unnamed(FunctionArgExpr::Expr(e));
    let name = Expr::Value(Value::SingleQuotedString(name.value).with_empty_span());
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(super::field::NAME)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![arg(object), arg(name)],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `["loc", "lat"]` → `"loc.lat"`; `["telemetry", "x"]` → `"x"`; a single part stays as is.
fn flat_name(parts: &[Ident], tables: &[String]) -> Option<Ident> {
    let parts = match parts.split_first() {
        Some((first, rest)) if !rest.is_empty() && tables.contains(&first.value) => rest,
        _ => parts,
    };
    let names: Vec<&str> = parts.iter().map(|p| p.value.as_str()).collect();
    Some(Ident::with_quote('"', names.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_sql::sqlparser::{dialect::GenericDialect, parser::Parser};

    fn rewritten(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0);
        flatten_paths(&mut stmt, "telemetry");
        stmt.to_string()
    }

    #[test]
    fn dotted_paths_become_flat_quoted_columns() {
        assert_eq!(
            rewritten("SELECT a.b.c, t.x, telemetry.y FROM telemetry t WHERE a.b > 1"),
            r#"SELECT "a.b.c", "x", "y" FROM telemetry t WHERE "a.b" > 1"#
        );
    }

    #[test]
    fn fields_after_an_index_become_path_field_calls() {
        assert_eq!(
            rewritten("SELECT w.hist[1].month, a[1][2], a[1].b[3].c FROM telemetry"),
            r#"SELECT path_field("w.hist"[1], 'month'), "a"[1][2], path_field(path_field("a"[1], 'b')[3], 'c') FROM telemetry"#
        );
    }

    #[test]
    fn array_index_after_a_path_keeps_the_index() {
        assert_eq!(
            rewritten("SELECT a.list[1], v[2] FROM telemetry"),
            r#"SELECT "a.list"[1], "v"[2] FROM telemetry"#
        );
    }
}
