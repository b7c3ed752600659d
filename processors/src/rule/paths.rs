//! Nested field paths in rule SQL: `loc.lat` and `loc.sensors[1]` name the flat column
//! `"loc.lat"` / `"loc.sensors"` that the decoder produced (see `decode::flatten`).
//!
//! SQL would otherwise read `loc.lat` as column `lat` of a table `loc`. The rewrite runs on
//! the parsed statement, before planning, so a parse error still carries its position. A
//! leading `telemetry.` (or the table alias) is dropped: `t.loc.lat` is `loc.lat` too.

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, AccessExpr, Expr, Ident, SetExpr, Statement, TableFactor,
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
            } else if parts.len() == 1 {
                return;
            }
            if access_chain.is_empty() {
                *e = (**root).clone();
            }
        }
        _ => {}
    }
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
    use datafusion::sql::sqlparser::{dialect::GenericDialect, parser::Parser};

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
    fn array_index_after_a_path_keeps_the_index() {
        assert_eq!(
            rewritten("SELECT a.list[1], v[2] FROM telemetry"),
            r#"SELECT "a.list"[1], "v"[2] FROM telemetry"#
        );
    }
}
