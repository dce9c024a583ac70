//! Statements chained into one PostgreSQL statement, the parts of a data-modifying `with`:
//! one round trip for what would be several. Each part is a store's own SQL with its own
//! `$1`, `$2` …, renumbered here after the parameters of the parts before it, and its values
//! bound by the store's own binding code.
//!
//! All parts see the database as it was when the statement started, not each other's
//! changes (unless they read them with `from` another part's `returning`), so only
//! statements that do not depend on each other's writes may be chained.

use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;
use sqlx::Execute;

/// A query's values being bound, as the stores' `bind` helpers take and give them.
pub type Binding<'q> = Query<'q, Postgres, PgArguments>;

/// A `with` under construction, and the values of its parameters.
pub struct Chain<'q> {
    parts: Vec<String>,
    count: usize,
    values: Binding<'q>,
}

impl Default for Chain<'_> {
    fn default() -> Self {
        Chain {
            parts: Vec::new(),
            count: 0,
            // Only its values are used: the statement is built in `parts`.
            values: sqlx::query(""),
        }
    }
}

impl<'q> Chain<'q> {
    /// Adds `parts` (`name as (statement)`, one or more, comma-separated) whose parameters
    /// `bind` binds, `$1` first and every one of them.
    pub fn with(&mut self, parts: &str, bind: impl FnOnce(Binding<'q>) -> Binding<'q>) {
        self.parts.push(renumber(parts, self.count));
        self.count += highest_parameter(parts);
        let values = std::mem::replace(&mut self.values, sqlx::query(""));
        self.values = bind(values);
    }

    /// The whole statement, ending with `select`, and its arguments.
    pub fn finish(mut self, select: &str) -> Result<(String, PgArguments), sqlx::Error> {
        let args = self
            .values
            .take_arguments()
            .map_err(sqlx::Error::Encode)?
            .unwrap_or_default();
        Ok((format!("with {} {select}", self.parts.join(", ")), args))
    }
}

/// `sql` with each `$n` made `$(n + by)`.
fn renumber(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&format!("${}", n + by)),
            Err(_) => out.push('$'),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// The highest `$n` in `sql`: how many values it takes.
fn highest_parameter(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|s| {
            let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            s[..digits].parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Arguments;

    #[test]
    fn renumbers_after_the_parameters_before() {
        assert_eq!(
            renumber("a = $1 and b = $2, $1", 3),
            "a = $4 and b = $5, $4"
        );
        assert_eq!(renumber("x = $10", 0), "x = $10");
        assert_eq!(renumber("no parameters", 5), "no parameters");
        assert_eq!(highest_parameter("a = $2 and $10 or $3"), 10);
    }

    #[test]
    fn chains_parts_and_their_values() {
        let mut chain = Chain::default();
        chain.with("a as (insert into t values ($1, $2))", |q| {
            q.bind(1_i64).bind("x")
        });
        chain.with(
            "b as (update u set k = $2 where id = $1 returning k)",
            |q| q.bind("id").bind(2_i64),
        );
        let (sql, args) = chain.finish("select k from b").unwrap();
        assert_eq!(
            sql,
            "with a as (insert into t values ($1, $2)), \
             b as (update u set k = $4 where id = $3 returning k) select k from b"
        );
        assert_eq!(args.len(), 4);
    }
}
