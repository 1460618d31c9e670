//! A seeded random SQL generator for differential testing (stock SQLite
//! against bop, `tests/tests/differential.rs`).
//!
//! [`Generator`] keeps a model of the schema it created (tables and their
//! columns and constraints, indexes, views) and of connection 0's
//! transaction and savepoint stack, so that most statements it produces are
//! valid. The runner executes each statement and reports the outcome back
//! with [`Generator::observe`]: the model applies a statement's effect only
//! when it succeeded, and restores the schema on ROLLBACK / ROLLBACK TO.
//! Statements that fail are fine as long as both engines fail.
//!
//! Determinism: nothing uses `random()`, `randomblob()` or the clock (large
//! values come from `zeroblob`, `hex`/`unhex`/`replace`/`substr` arithmetic,
//! `printf('%.*c')` and literal `x'..'` blobs); every query that returns
//! rows ends with `ORDER BY` over all its output columns (a total order on
//! what it prints), aggregates that concatenate order their input, and the
//! only rows returned in engine order (`RETURNING`) are marked
//! [`Compare::Unordered`]. `PRAGMA wal_checkpoint` answers with frame counts
//! that legitimately differ between engines: [`Compare::SuccessOnly`].

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How the runner compares a statement's outcome on the two engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// Success or failure, and every returned row in order.
    Rows,
    /// Success or failure, and the returned rows as a multiset.
    Unordered,
    /// Success or failure only (the rows legitimately differ).
    SuccessOnly,
}

/// One generated statement.
#[derive(Clone, Debug)]
pub struct Stmt {
    /// Which connection runs it (0, or 1 in two-connection runs).
    pub conn: usize,
    /// A single SQL statement on one line.
    pub sql: String,
    pub compare: Compare,
    /// What kind of statement this is ("insert", "recursive", "savepoint",
    /// "big_value", ...), for coverage statistics.
    pub tags: Vec<&'static str>,
}

/// Generator settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// 1, or 2 for runs interleaving a second connection. The second
    /// connection only reads while connection 0 is in a transaction and
    /// never opens a transaction itself, so neither ever sees SQLITE_BUSY.
    pub connections: usize,
    /// Largest blob or text value, in bytes.
    pub max_value: usize,
    /// Largest row count of a `WITH RECURSIVE` insert.
    pub max_recursive: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            connections: 1,
            max_value: 200 * 1024,
            max_recursive: 3000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Int,
    Real,
    Text,
    Blob,
    Num,
    Any,
}

const TYPES: [Ty; 6] = [Ty::Int, Ty::Real, Ty::Text, Ty::Blob, Ty::Num, Ty::Any];

#[derive(Clone, Debug)]
struct Col {
    name: String,
    ty: Ty,
    not_null: bool,
}

#[derive(Clone, Debug)]
struct Table {
    name: String,
    cols: Vec<Col>,
    without_rowid: bool,
    /// The INTEGER PRIMARY KEY column (a rowid alias), if any.
    ipk: Option<usize>,
    temp: bool,
    /// Column sets with a UNIQUE or PRIMARY KEY constraint (conflict
    /// targets for upserts).
    uniques: Vec<Vec<String>>,
}

impl Table {
    fn has_rowid(&self) -> bool {
        !self.without_rowid
    }
}

#[derive(Clone, Debug)]
struct Index {
    name: String,
    table: String,
    /// Columns the index (or its expressions) reads.
    cols: Vec<String>,
}

#[derive(Clone, Debug)]
struct View {
    name: String,
    ncols: usize,
}

#[derive(Clone, Debug, Default)]
struct Schema {
    tables: Vec<Table>,
    indexes: Vec<Index>,
    views: Vec<View>,
}

impl Schema {
    fn table(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.name == name)
    }
    fn drop_table(&mut self, name: &str) {
        self.tables.retain(|t| t.name != name);
        self.indexes.retain(|i| i.table != name);
    }
}

/// What a statement does to the model when it succeeds.
#[derive(Clone, Debug)]
enum Effect {
    None,
    CreateTable(Table),
    CreateIndex(Index),
    CreateView(View),
    DropTable(String),
    DropIndex(String),
    DropView(String),
    AddColumn(String, Col),
    DropColumn(String, String),
    RenameTable(String, String),
    RenameColumn(String, String, String),
    Begin,
    Commit,
    Rollback,
    Savepoint(String),
    Release(String),
    RollbackTo(String),
}

#[derive(Clone, Debug)]
struct Tx {
    /// Started with BEGIN (false: by a SAVEPOINT outside a transaction,
    /// which RELEASE of that savepoint commits).
    explicit: bool,
    /// The schema when the transaction started.
    base: Schema,
    /// Open savepoints, outermost first, with the schema at each.
    savepoints: Vec<(String, Schema)>,
    /// Statements run in the transaction so far, and how many to run
    /// before ending it.
    len: usize,
    target: usize,
}

/// The random statement stream of one seed. See the module documentation.
pub struct Generator {
    rng: StdRng,
    cfg: Config,
    schema: Schema,
    tx: Option<Tx>,
    pending: Option<Effect>,
    counter: u64,
}

const WORDS: [&str; 16] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi",
];

fn order_all(n: usize) -> String {
    (1..=n)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn qual(alias: Option<&str>, col: &str) -> String {
    match alias {
        Some(a) => format!("{a}.{col}"),
        None => col.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Generator {
    /// A generator for `seed`: the same seed and the same observed outcomes
    /// give the same statements.
    pub fn new(seed: u64, cfg: Config) -> Generator {
        assert!(
            cfg.connections == 1 || cfg.connections == 2,
            "1 or 2 connections"
        );
        Generator {
            rng: StdRng::seed_from_u64(seed),
            cfg,
            schema: Schema::default(),
            tx: None,
            pending: None,
            counter: 0,
        }
    }

    /// Whether connection 0 is inside a transaction (in the model).
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// Number of tables in the model.
    pub fn tables(&self) -> usize {
        self.schema.tables.len()
    }

    /// The statement that ends connection 0's open transaction, if any
    /// (COMMIT). Report its outcome with [`Generator::observe`].
    pub fn end_transaction(&mut self) -> Option<Stmt> {
        assert!(self.pending.is_none(), "observe() the previous statement");
        self.tx.as_ref()?;
        self.pending = Some(Effect::Commit);
        Some(Stmt {
            conn: 0,
            sql: "COMMIT".into(),
            compare: Compare::Rows,
            tags: vec!["commit"],
        })
    }

    /// The runner closed and reopened every connection: TEMP objects are
    /// gone. Only call it outside transactions.
    pub fn reopened(&mut self) {
        assert!(self.tx.is_none(), "reopen inside a transaction");
        let temp: Vec<String> = self
            .schema
            .tables
            .iter()
            .filter(|t| t.temp)
            .map(|t| t.name.clone())
            .collect();
        for t in temp {
            self.schema.drop_table(&t);
        }
    }

    /// Reports the outcome of the last statement: whether it succeeded, and
    /// whether connection 0 is in autocommit mode afterwards.
    pub fn observe(&mut self, ok: bool, autocommit: bool) {
        self.settle(ok);
        match (&self.tx, autocommit) {
            (Some(tx), true) => {
                // SQLite ended the transaction by itself (a failure that
                // rolls back the whole transaction).
                self.schema = tx.base.clone();
                self.tx = None;
            }
            (None, false) => {
                self.tx = Some(Tx {
                    explicit: true,
                    base: self.schema.clone(),
                    savepoints: Vec::new(),
                    len: 0,
                    target: 1,
                });
            }
            _ => {}
        }
    }

    /// Applies the pending statement's effect if it succeeded.
    fn settle(&mut self, ok: bool) {
        let effect = self
            .pending
            .take()
            .expect("observe() without a generated statement");
        if ok {
            self.apply(effect);
        }
    }

    fn apply(&mut self, effect: Effect) {
        let s = &mut self.schema;
        match effect {
            Effect::None => {}
            Effect::CreateTable(t) => {
                if s.table(&t.name).is_none() {
                    s.tables.push(t);
                }
            }
            Effect::CreateIndex(i) => {
                if !s.indexes.iter().any(|x| x.name == i.name) {
                    s.indexes.push(i);
                }
            }
            Effect::CreateView(v) => {
                if !s.views.iter().any(|x| x.name == v.name) {
                    s.views.push(v);
                }
            }
            Effect::DropTable(n) => s.drop_table(&n),
            Effect::DropIndex(n) => s.indexes.retain(|i| i.name != n),
            Effect::DropView(n) => s.views.retain(|v| v.name != n),
            Effect::AddColumn(t, c) => {
                if let Some(i) = s.table(&t) {
                    s.tables[i].cols.push(c);
                }
            }
            Effect::DropColumn(t, c) => {
                if let Some(i) = s.table(&t) {
                    let tb = &mut s.tables[i];
                    if let Some(p) = tb.cols.iter().position(|x| x.name == c) {
                        tb.cols.remove(p);
                        if let Some(k) = tb.ipk {
                            tb.ipk = match k.cmp(&p) {
                                std::cmp::Ordering::Less => Some(k),
                                std::cmp::Ordering::Equal => None,
                                std::cmp::Ordering::Greater => Some(k - 1),
                            };
                        }
                    }
                }
            }
            Effect::RenameTable(old, new) => {
                if let Some(i) = s.table(&old) {
                    s.tables[i].name = new.clone();
                    for ix in s.indexes.iter_mut().filter(|ix| ix.table == old) {
                        ix.table = new.clone();
                    }
                }
            }
            Effect::RenameColumn(t, old, new) => {
                if let Some(i) = s.table(&t) {
                    let tb = &mut s.tables[i];
                    for c in tb.cols.iter_mut().filter(|c| c.name == old) {
                        c.name = new.clone();
                    }
                    for u in tb.uniques.iter_mut() {
                        for c in u.iter_mut().filter(|c| **c == old) {
                            *c = new.clone();
                        }
                    }
                    for ix in s.indexes.iter_mut().filter(|ix| ix.table == t) {
                        for c in ix.cols.iter_mut().filter(|c| **c == old) {
                            *c = new.clone();
                        }
                    }
                }
            }
            Effect::Begin => {
                let target = if self.rng.random_bool(0.15) {
                    self.rng.random_range(60..200)
                } else {
                    self.rng.random_range(1..40)
                };
                self.tx = Some(Tx {
                    explicit: true,
                    base: self.schema.clone(),
                    savepoints: Vec::new(),
                    len: 0,
                    target,
                });
            }
            Effect::Commit => self.tx = None,
            Effect::Rollback => {
                if let Some(tx) = self.tx.take() {
                    self.schema = tx.base;
                }
            }
            Effect::Savepoint(name) => {
                let snap = self.schema.clone();
                match &mut self.tx {
                    Some(tx) => tx.savepoints.push((name, snap)),
                    None => {
                        let target = self.rng.random_range(1..40);
                        self.tx = Some(Tx {
                            explicit: false,
                            base: snap.clone(),
                            savepoints: vec![(name, snap)],
                            len: 0,
                            target,
                        });
                    }
                }
            }
            Effect::Release(name) => {
                if let Some(tx) = &mut self.tx {
                    if let Some(i) = tx
                        .savepoints
                        .iter()
                        .rposition(|(n, _)| n.eq_ignore_ascii_case(&name))
                    {
                        tx.savepoints.truncate(i);
                        if tx.savepoints.is_empty() && !tx.explicit {
                            self.tx = None;
                        }
                    }
                }
            }
            Effect::RollbackTo(name) => {
                if let Some(tx) = &mut self.tx {
                    if let Some(i) = tx
                        .savepoints
                        .iter()
                        .rposition(|(n, _)| n.eq_ignore_ascii_case(&name))
                    {
                        tx.savepoints.truncate(i + 1);
                        self.schema = tx.savepoints[i].1.clone();
                    }
                }
            }
        }
    }

    // ----------------------------------------------------------------
    // Randomness helpers

    fn p(&mut self, prob: f64) -> bool {
        self.rng.random_bool(prob)
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.random_range(lo..hi)
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn pick_table(&mut self) -> Option<Table> {
        if self.schema.tables.is_empty() {
            return None;
        }
        let i = self.below(self.schema.tables.len());
        Some(self.schema.tables[i].clone())
    }

    /// A column of `t`, half the time one that an index covers if any.
    fn pick_col(&mut self, t: &Table) -> Col {
        let mut indexed: Vec<&Col> = t
            .cols
            .iter()
            .filter(|c| {
                self.schema
                    .indexes
                    .iter()
                    .any(|i| i.table == t.name && i.cols.first() == Some(&c.name))
                    || t.uniques.iter().any(|u| u.first() == Some(&c.name))
            })
            .collect();
        if !indexed.is_empty() && self.p(0.5) {
            let i = self.below(indexed.len());
            return indexed.swap_remove(i).clone();
        }
        let i = self.below(t.cols.len());
        t.cols[i].clone()
    }

    /// Up to `n` distinct columns of `t`, in table order.
    fn pick_cols(&mut self, t: &Table, n: usize) -> Vec<Col> {
        let mut idx: Vec<usize> = (0..t.cols.len()).collect();
        let mut out = Vec::new();
        while out.len() < n && !idx.is_empty() {
            let i = self.below(idx.len());
            out.push(idx.swap_remove(i));
        }
        out.sort_unstable();
        out.into_iter().map(|i| t.cols[i].clone()).collect()
    }

    fn random_ty(&mut self) -> Ty {
        *self.pick(&TYPES)
    }

    // ----------------------------------------------------------------
    // Values

    fn int_lit(&mut self) -> String {
        match self.below(100) {
            0..50 => self.range(0, 50).to_string(),
            50..80 => self.range(0, 1000).to_string(),
            80..90 => self.range(-1000, 0).to_string(),
            90..96 => self.range(0, 100_000).to_string(),
            96..99 => self.range(-(1 << 62), 1 << 62).to_string(),
            _ => format!("'{}'", self.range(0, 100)),
        }
    }

    fn real_lit(&mut self) -> String {
        match self.below(20) {
            0 => "1e300".into(),
            1 => format!("{:?}", self.range(1, 1000) as f64 / 7.0),
            2 => self.range(0, 100).to_string(),
            _ => format!("{:?}", self.range(-4000, 4000) as f64 / 8.0),
        }
    }

    fn text_lit(&mut self) -> String {
        match self.below(20) {
            0 => "''".into(),
            1 => "'it''s'".into(),
            2 => "'héllo wörld ✓'".into(),
            3 => format!("'{}'", self.range(0, 100)),
            4 => format!("'{}'", "abcdefghij".repeat(self.below(40) + 1)),
            5..10 => {
                let w = *self.pick(&WORDS);
                format!("'{w}{}'", self.range(0, 20))
            }
            _ => format!("'{}'", self.pick(&WORDS)),
        }
    }

    fn blob_lit(&mut self) -> String {
        let n = match self.below(10) {
            0 => 0,
            1..8 => self.below(16) + 1,
            _ => self.below(300) + 16,
        };
        let bytes: Vec<u8> = (0..n).map(|_| self.rng.random::<u8>()).collect();
        format!("x'{}'", hex(&bytes))
    }

    /// A size for a large value: mostly a few KiB to 20 KiB (overflow
    /// chains), sometimes up to `max_value`.
    fn big_len(&mut self) -> usize {
        let max = self.cfg.max_value.max(2000);
        if self.p(0.25) {
            self.rng.random_range(20_000.min(max - 1)..=max)
        } else {
            self.rng.random_range(1000..=20_000.min(max))
        }
    }

    /// A deterministic expression for a large blob or text value.
    fn big_value(&mut self, ty: Ty) -> String {
        let n = self.big_len();
        if ty == Ty::Text || (ty != Ty::Blob && self.p(0.3)) {
            return match self.below(3) {
                0 => {
                    let c = (b'a' + self.below(26) as u8) as char;
                    format!("printf('%.*c', {n}, '{c}')")
                }
                1 => format!("replace(hex(zeroblob({})), '00', 'xy')", n / 2),
                _ => format!(
                    "substr(replace(hex(zeroblob({})), '00', '{} '), {})",
                    n / 5 + 1,
                    self.pick(&WORDS),
                    self.range(1, 10)
                ),
            };
        }
        match self.below(5) {
            0 => format!("zeroblob({n})"),
            1 => format!(
                "unhex(replace(hex(zeroblob({n})), '00', '{:02x}'))",
                self.rng.random::<u8>()
            ),
            2 => {
                let n = n.min(8000);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.random::<u8>()).collect();
                format!("x'{}'", hex(&bytes))
            }
            _ => {
                let pat: Vec<u8> = (0..(self.below(12) + 4))
                    .map(|_| self.rng.random::<u8>())
                    .collect();
                format!(
                    "unhex(substr(replace(hex(zeroblob({})), '00', '{}'), 1, {}))",
                    n / pat.len() + 1,
                    hex(&pat),
                    2 * n
                )
            }
        }
    }

    /// A literal (or constant expression) for a column of type `ty`.
    fn value(&mut self, ty: Ty, nullable: bool, big_ok: bool) -> String {
        if nullable && self.p(0.08) {
            return "NULL".into();
        }
        if big_ok && matches!(ty, Ty::Text | Ty::Blob | Ty::Any | Ty::Num) && self.p(0.03) {
            return self.big_value(ty);
        }
        match ty {
            Ty::Int => self.int_lit(),
            Ty::Real => self.real_lit(),
            Ty::Text => self.text_lit(),
            Ty::Blob => self.blob_lit(),
            Ty::Num | Ty::Any => match self.below(4) {
                0 => self.int_lit(),
                1 => self.real_lit(),
                2 => self.text_lit(),
                _ => self.blob_lit(),
            },
        }
    }

    /// A constant usable in comparisons with a column of type `ty`.
    fn cmp_value(&mut self, ty: Ty) -> String {
        self.value(ty, false, false)
    }

    /// An expression of the recursive counter `x` for a column of `ty`.
    fn x_expr(&mut self, ty: Ty, big_ok: bool) -> String {
        if big_ok && matches!(ty, Ty::Blob | Ty::Text | Ty::Any) && self.p(0.15) {
            let every = self.range(200, 2000);
            let big = self.big_value(ty);
            let small = match ty {
                Ty::Text => "'s' || x".to_string(),
                _ => "x'00ff'".to_string(),
            };
            return format!("CASE WHEN x % {every} = 0 THEN {big} ELSE {small} END");
        }
        let k = self.range(2, 1000);
        let m = self.range(2, 500);
        match ty {
            Ty::Int => match self.below(5) {
                0 => "x".into(),
                1 => format!("x * {k} % {m}"),
                2 => format!("x / {}", self.range(2, 20)),
                3 => format!("-x - {k}"),
                _ => format!("(x * 2654435761) % {}", self.range(100, 100_000)),
            },
            Ty::Real => match self.below(3) {
                0 => format!("x / {}.0", self.range(1, 16)),
                1 => format!("x * 1.5 - {k}"),
                _ => format!("(x % {m}) * 0.1"),
            },
            Ty::Text => match self.below(4) {
                0 => format!("'r' || (x % {m})"),
                1 => format!("printf('%06d-%s', x * {k}, '{}')", self.pick(&WORDS)),
                2 => format!("hex(x * {k})"),
                _ => "substr('abcdefghijklmnopqrstuvwxyz', x % 26 + 1, x % 7)".into(),
            },
            Ty::Blob => match self.below(3) {
                0 => format!("zeroblob(x % {})", self.range(1, 300)),
                1 => "unhex(printf('%08x', x))".into(),
                _ => format!("CAST(x * {k} AS BLOB)"),
            },
            Ty::Num | Ty::Any => match self.below(4) {
                0 => format!("x % {m}"),
                1 => "x / 3.0".to_string(),
                2 => format!("'n' || (x % {m})"),
                _ => "CASE WHEN x % 5 = 0 THEN NULL ELSE x END".into(),
            },
        }
    }

    // ----------------------------------------------------------------
    // Predicates and expressions

    /// One comparison on a column of `t`.
    fn atom(&mut self, t: &Table, alias: Option<&str>, sub: bool) -> String {
        let c = self.pick_col(t);
        let q = qual(alias, &c.name);
        match self.below(if sub { 13 } else { 11 }) {
            0 | 1 => format!("{q} = {}", self.cmp_value(c.ty)),
            2 => {
                let op = *self.pick(&["<", "<=", ">", ">=", "<>"]);
                format!("{q} {op} {}", self.cmp_value(c.ty))
            }
            3 => format!(
                "{q} BETWEEN {} AND {}",
                self.cmp_value(c.ty),
                self.cmp_value(c.ty)
            ),
            4 => {
                let vs: Vec<String> = (0..self.below(4) + 1)
                    .map(|_| self.cmp_value(c.ty))
                    .collect();
                format!("{q} IN ({})", vs.join(", "))
            }
            5 => format!("{q} IS {}NULL", if self.p(0.5) { "NOT " } else { "" }),
            6 => format!("abs({q}) % {} = {}", self.range(2, 10), self.range(0, 3)),
            7 => format!("length({q}) > {}", self.range(0, 20)),
            8 => format!("{q} LIKE '{}%'", (b'a' + self.below(26) as u8) as char),
            9 if t.has_rowid() => {
                let r = qual(alias, "rowid");
                if self.p(0.5) {
                    format!("{r} % {} = {}", self.range(2, 7), self.range(0, 2))
                } else {
                    let lo = self.range(0, 2000);
                    format!("{r} BETWEEN {lo} AND {}", lo + self.range(0, 500))
                }
            }
            11 | 12 => {
                let Some(t2) = self.pick_table() else {
                    return format!("{q} IS NOT NULL");
                };
                let c2 = self.pick_col(&t2);
                let w = self.atom(&t2, None, false);
                if self.p(0.5) {
                    format!(
                        "{q} {}IN (SELECT {} FROM {} WHERE {w})",
                        if self.p(0.2) { "NOT " } else { "" },
                        c2.name,
                        t2.name
                    )
                } else {
                    format!("{q} = (SELECT max({}) FROM {} WHERE {w})", c2.name, t2.name)
                }
            }
            _ => format!("{q} >= {}", self.cmp_value(c.ty)),
        }
    }

    /// A WHERE condition: one to three atoms.
    fn pred(&mut self, t: &Table, alias: Option<&str>, sub: bool) -> String {
        let a = self.atom(t, alias, sub);
        match self.below(10) {
            0..6 => a,
            6..8 => format!("{a} AND {}", self.atom(t, alias, sub)),
            8 => format!("({a} OR {})", self.atom(t, alias, sub)),
            _ => format!("NOT ({a})"),
        }
    }

    /// A scalar expression over a column, for select lists.
    fn col_expr(&mut self, c: &Col, alias: Option<&str>) -> String {
        let q = qual(alias, &c.name);
        match self.below(14) {
            0..5 => q,
            5 => format!("typeof({q})"),
            6 => format!("length({q})"),
            7 => format!("hex(substr({q}, 1, 6))"),
            8 => format!("{q} + 1"),
            9 => format!("coalesce({q}, 'none')"),
            10 => format!("upper({q})"),
            11 => format!("round({q}, 2)"),
            12 => format!("{q} * 3"),
            _ => format!("quote(substr({q}, 1, 20))"),
        }
    }

    fn agg_expr(&mut self, c: &Col, alias: Option<&str>) -> String {
        let q = qual(alias, &c.name);
        match self.below(10) {
            0 => format!("count({q})"),
            1 => format!("count(DISTINCT {q})"),
            2 => format!("sum({q})"),
            3 => format!("total({q})"),
            4 => format!("min({q})"),
            5 => format!("max({q})"),
            6 => format!("avg({q})"),
            7 => format!("group_concat(substr({q}, 1, 8), '|' ORDER BY {q}, typeof({q}))"),
            8 => format!("sum(length({q}))"),
            _ => format!("max(length({q}))"),
        }
    }

    /// `t` itself, or at most `limit` of its rows (in a total order), as a
    /// FROM item.
    fn limited(&mut self, t: &Table, limit: i64) -> String {
        format!(
            "(SELECT * FROM {} ORDER BY {} LIMIT {})",
            t.name,
            order_all(t.cols.len()),
            self.range(1, limit + 1)
        )
    }

    // ----------------------------------------------------------------
    // Statement kinds

    fn create_table(&mut self) -> (String, Effect, Vec<&'static str>) {
        let name = self.fresh("t");
        let temp = self.p(0.05);
        let strict = self.p(0.12);
        let shape = self.below(100);
        let ncols = self.below(5) + 2;
        let mut cols = Vec::new();
        let mut defs = Vec::new();
        let mut uniques = Vec::new();
        let mut ipk = None;
        let mut tags = vec!["create_table"];
        if shape < 45 {
            ipk = Some(0);
            cols.push(Col {
                name: "id".into(),
                ty: Ty::Int,
                not_null: false,
            });
            uniques.push(vec!["id".to_string()]);
            defs.push(format!(
                "id INTEGER PRIMARY KEY{}",
                if self.p(0.2) { " AUTOINCREMENT" } else { "" }
            ));
            tags.push("integer_primary_key");
        }
        let without_rowid = shape >= 75;
        while cols.len() < ncols {
            let cname = format!("c{}", cols.len());
            let ty = self.random_ty();
            let decl = match (ty, strict) {
                (Ty::Int, _) => {
                    if self.p(0.5) {
                        "INTEGER"
                    } else {
                        "INT"
                    }
                }
                (Ty::Real, _) => "REAL",
                (Ty::Text, _) => "TEXT",
                (Ty::Blob, _) => "BLOB",
                (Ty::Num, false) => "NUMERIC",
                (Ty::Any, false) => "",
                (Ty::Num | Ty::Any, true) => "ANY",
            };
            let mut d = if decl.is_empty() {
                cname.clone()
            } else {
                format!("{cname} {decl}")
            };
            let not_null = self.p(0.15);
            if not_null {
                d.push_str(" NOT NULL");
                if self.p(0.6) {
                    let v = self.value(ty, false, false);
                    d.push_str(&format!(" DEFAULT {v}"));
                }
            } else if self.p(0.15) {
                let v = self.value(ty, false, false);
                d.push_str(&format!(" DEFAULT {v}"));
            }
            if self.p(0.1) {
                d.push_str(" UNIQUE");
                uniques.push(vec![cname.clone()]);
                tags.push("unique");
            }
            defs.push(d);
            cols.push(Col {
                name: cname,
                ty,
                not_null,
            });
        }
        let rest: Vec<String> = cols[ipk.map_or(0, |_| 1)..]
            .iter()
            .map(|c| c.name.clone())
            .collect();
        if without_rowid || (ipk.is_none() && shape >= 60) {
            let k = if rest.len() > 1 && self.p(0.5) { 2 } else { 1 };
            let pk: Vec<String> = rest[..k].to_vec();
            defs.push(format!("PRIMARY KEY({})", pk.join(", ")));
            if without_rowid {
                for c in cols.iter_mut().filter(|c| pk.contains(&c.name)) {
                    c.not_null = true;
                }
            }
            uniques.push(pk);
        }
        if rest.len() >= 2 && self.p(0.12) {
            let u = vec![rest[rest.len() - 1].clone(), rest[0].clone()];
            defs.push(format!("UNIQUE({})", u.join(", ")));
            uniques.push(u);
            tags.push("unique");
        }
        let mut opts = Vec::new();
        if without_rowid {
            opts.push("WITHOUT ROWID");
            tags.push("without_rowid");
        }
        if strict {
            opts.push("STRICT");
            tags.push("strict");
        }
        if temp {
            tags.push("temp");
        }
        let sql = format!(
            "CREATE {}TABLE {}{name}({}){}{}",
            if temp { "TEMP " } else { "" },
            if self.p(0.1) { "IF NOT EXISTS " } else { "" },
            defs.join(", "),
            if opts.is_empty() { "" } else { " " },
            opts.join(", ")
        );
        let table = Table {
            name,
            cols,
            without_rowid,
            ipk,
            temp,
            uniques,
        };
        (sql, Effect::CreateTable(table), tags)
    }

    fn create_table_as(&mut self, src: &Table) -> (String, Effect, Vec<&'static str>) {
        let name = self.fresh("t");
        let w = if self.p(0.5) {
            format!(" WHERE {}", self.pred(src, None, false))
        } else {
            String::new()
        };
        let sql = format!("CREATE TABLE {name} AS SELECT * FROM {}{w}", src.name);
        let cols = src
            .cols
            .iter()
            .map(|c| Col {
                name: c.name.clone(),
                ty: if c.ty == Ty::Blob { Ty::Any } else { c.ty },
                not_null: false,
            })
            .collect();
        let t = Table {
            name,
            cols,
            without_rowid: false,
            ipk: None,
            temp: false,
            uniques: Vec::new(),
        };
        (sql, Effect::CreateTable(t), vec!["create_table_as"])
    }

    fn create_index(&mut self, t: &Table) -> (String, Effect, Vec<&'static str>) {
        let name = self.fresh("i");
        let k = self.below(t.cols.len().min(3)) + 1;
        let cols = self.pick_cols(t, k);
        let mut tags = vec!["create_index"];
        if k > 1 {
            tags.push("index_multi");
        }
        let mut terms = Vec::new();
        for c in &cols {
            let term = if self.p(0.1) {
                tags.push("index_expr");
                match c.ty {
                    Ty::Text => format!("lower({})", c.name),
                    Ty::Int | Ty::Real => format!("({} + 1)", c.name),
                    _ => format!("length({})", c.name),
                }
            } else {
                c.name.clone()
            };
            let dir = if self.p(0.15) { " DESC" } else { "" };
            terms.push(format!("{term}{dir}"));
        }
        let unique = self.p(0.15);
        if unique {
            tags.push("index_unique");
        }
        let partial = if self.p(0.25) {
            tags.push("index_partial");
            let c = self.pick_col(t);
            match self.below(3) {
                0 => format!(" WHERE {} IS NOT NULL", c.name),
                1 => format!(" WHERE {} > {}", c.name, self.cmp_value(c.ty)),
                _ => format!(" WHERE abs({}) % 2 = 0", c.name),
            }
        } else {
            String::new()
        };
        let sql = format!(
            "CREATE {}INDEX {}{name} ON {}({}){partial}",
            if unique { "UNIQUE " } else { "" },
            if self.p(0.1) { "IF NOT EXISTS " } else { "" },
            t.name,
            terms.join(", ")
        );
        let ix = Index {
            name,
            table: t.name.clone(),
            cols: cols.into_iter().map(|c| c.name).collect(),
        };
        (sql, Effect::CreateIndex(ix), tags)
    }

    fn create_view(&mut self, t: &Table) -> (String, Effect, Vec<&'static str>) {
        let name = self.fresh("v");
        let n = self.below(t.cols.len().min(4)) + 1;
        let cols = self.pick_cols(t, n);
        let exprs: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} AS a{i}", self.col_expr(c, None)))
            .collect();
        let w = self.pred(t, None, false);
        let sql = format!(
            "CREATE VIEW {name} AS SELECT {} FROM {} WHERE {w}",
            exprs.join(", "),
            t.name
        );
        (
            sql,
            Effect::CreateView(View { name, ncols: n }),
            vec!["create_view"],
        )
    }

    fn alter(&mut self, t: &Table) -> (String, Effect, Vec<&'static str>) {
        match self.below(10) {
            0..5 => {
                let name = self.fresh("x");
                let ty = self.random_ty();
                let decl = match ty {
                    Ty::Int => "INTEGER",
                    Ty::Real => "REAL",
                    Ty::Text => "TEXT",
                    Ty::Blob => "BLOB",
                    Ty::Num | Ty::Any => "ANY",
                };
                let not_null = self.p(0.3);
                let default = if not_null || self.p(0.4) {
                    format!(" DEFAULT {}", self.value(ty, false, false))
                } else {
                    String::new()
                };
                let sql = format!(
                    "ALTER TABLE {} ADD COLUMN {name} {decl}{}{default}",
                    t.name,
                    if not_null { " NOT NULL" } else { "" }
                );
                let col = Col { name, ty, not_null };
                (
                    sql,
                    Effect::AddColumn(t.name.clone(), col),
                    vec!["alter_add_column"],
                )
            }
            5 | 6 => {
                let c = self.pick_col(t);
                (
                    format!("ALTER TABLE {} DROP COLUMN {}", t.name, c.name),
                    Effect::DropColumn(t.name.clone(), c.name),
                    vec!["alter_drop_column"],
                )
            }
            7 | 8 => {
                let c = self.pick_col(t);
                let new = self.fresh("r");
                (
                    format!("ALTER TABLE {} RENAME COLUMN {} TO {new}", t.name, c.name),
                    Effect::RenameColumn(t.name.clone(), c.name, new),
                    vec!["alter_rename_column"],
                )
            }
            _ => {
                let new = self.fresh("t");
                (
                    format!("ALTER TABLE {} RENAME TO {new}", t.name),
                    Effect::RenameTable(t.name.clone(), new),
                    vec!["alter_rename_table"],
                )
            }
        }
    }

    fn conflict(&mut self, t: &Table) -> &'static str {
        let p = if t.uniques.is_empty() { 0.15 } else { 0.6 };
        if self.p(p) {
            const OR: [&str; 4] = ["OR IGNORE ", "OR REPLACE ", "OR IGNORE ", "OR ABORT "];
            OR[self.below(OR.len())]
        } else {
            ""
        }
    }

    /// Columns to insert into: all but (usually) the INTEGER PRIMARY KEY,
    /// sometimes leaving out nullable ones.
    fn insert_cols(&mut self, t: &Table) -> Vec<Col> {
        let with_ipk = self.p(0.3);
        let mut out = Vec::new();
        for (i, c) in t.cols.iter().enumerate() {
            if Some(i) == t.ipk && !with_ipk {
                continue;
            }
            if !c.not_null && Some(i) != t.ipk && self.p(0.1) {
                continue;
            }
            out.push(c.clone());
        }
        if out.is_empty() {
            out.push(t.cols[t.cols.len() - 1].clone());
        }
        out
    }

    fn row_values(&mut self, t: &Table, cols: &[Col], big_ok: bool) -> String {
        let mut big_used = !big_ok;
        let vals: Vec<String> = cols
            .iter()
            .map(|c| {
                if t.ipk.is_some_and(|i| t.cols[i].name == c.name) {
                    return if self.p(0.3) {
                        "NULL".into()
                    } else {
                        self.range(1, 3000).to_string()
                    };
                }
                let nullable = !c.not_null || self.p(0.02);
                let v = self.value(c.ty, nullable, !big_used);
                if v.contains("zeroblob") || v.contains("printf") || v.len() > 600 {
                    big_used = true;
                }
                v
            })
            .collect();
        format!("({})", vals.join(", "))
    }

    fn returning(&mut self, t: &Table) -> (String, Compare) {
        if self.p(0.08) {
            let c = self.pick_col(t);
            let e = self.col_expr(&c, None);
            (format!(" RETURNING {e}"), Compare::Unordered)
        } else {
            (String::new(), Compare::Rows)
        }
    }

    fn insert(&mut self, t: &Table) -> (String, Compare, Vec<&'static str>) {
        let cols = self.insert_cols(t);
        let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
        let mut tags = vec!["insert"];
        let or = self.conflict(t);
        if or == "OR REPLACE " {
            tags.push("insert_or_replace");
        }
        let nrows = if self.p(0.6) { 1 } else { self.below(20) + 2 };
        if nrows > 1 {
            tags.push("insert_multi");
        }
        let rows: Vec<String> = (0..nrows)
            .map(|_| self.row_values(t, &cols, true))
            .collect();
        if rows
            .iter()
            .any(|r| r.contains("zeroblob") || r.len() > 2000)
        {
            tags.push("big_value");
        }
        let verb = if or == "OR REPLACE " && self.p(0.3) {
            "REPLACE".to_string()
        } else {
            format!("INSERT {or}")
        };
        let (ret, cmp) = self.returning(t);
        let sql = format!(
            "{} INTO {}({}) VALUES {}{ret}",
            verb.trim_end(),
            t.name,
            names.join(", "),
            rows.join(", ")
        );
        (sql, cmp, tags)
    }

    fn upsert(&mut self, t: &Table) -> (String, Compare, Vec<&'static str>) {
        let target = if t.uniques.is_empty() {
            None
        } else {
            let i = self.below(t.uniques.len());
            Some(t.uniques[i].clone())
        };
        let cols: Vec<Col> = t
            .cols
            .iter()
            .filter(|c| {
                target.as_ref().is_some_and(|u| u.contains(&c.name))
                    || Some(&c.name) != t.ipk.map(|i| &t.cols[i].name)
            })
            .cloned()
            .collect();
        let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
        let row = self.row_values(t, &cols, true);
        let action = match &target {
            Some(u) if self.p(0.8) => {
                let c = self.pick_col(t);
                let set = if u.contains(&c.name) || self.p(0.3) {
                    format!("{} = excluded.{}", c.name, c.name)
                } else {
                    match c.ty {
                        Ty::Int | Ty::Real => format!("{0} = coalesce({0}, 0) + 1", c.name),
                        _ => format!("{0} = excluded.{0}", c.name),
                    }
                };
                format!("ON CONFLICT({}) DO UPDATE SET {set}", u.join(", "))
            }
            _ => "ON CONFLICT DO NOTHING".into(),
        };
        let sql = format!(
            "INSERT INTO {}({}) VALUES {row} {action}",
            t.name,
            names.join(", ")
        );
        (sql, Compare::Rows, vec!["insert", "upsert"])
    }

    fn insert_recursive(&mut self, t: &Table) -> (String, Vec<&'static str>) {
        let n = if self.p(0.2) {
            self.range(500, self.cfg.max_recursive as i64 + 1)
        } else {
            self.range(1, 300)
        };
        let cols = self.insert_cols(t);
        let big_ok = self.p(0.3);
        let mut tags = vec!["insert", "recursive"];
        let exprs: Vec<String> = cols
            .iter()
            .map(|c| {
                if t.ipk.is_some_and(|i| t.cols[i].name == c.name) {
                    if self.p(0.5) {
                        "NULL".into()
                    } else {
                        format!("x + {}", self.range(0, 5000))
                    }
                } else {
                    self.x_expr(c.ty, big_ok)
                }
            })
            .collect();
        if exprs
            .iter()
            .any(|e| e.contains("CASE WHEN x %") && e.contains("THEN"))
        {
            tags.push("big_value");
        }
        let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
        let or = self.conflict(t);
        let sql = format!(
            "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < {n}) \
             INSERT {or}INTO {}({}) SELECT {} FROM r",
            t.name,
            names.join(", "),
            exprs.join(", ")
        );
        (sql, tags)
    }

    fn insert_select(&mut self, t: &Table) -> (String, Vec<&'static str>) {
        let src = self.pick_table().unwrap_or_else(|| t.clone());
        let cols = self.insert_cols(t);
        let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
        let exprs: Vec<String> = cols
            .iter()
            .map(|c| {
                if t.ipk.is_some_and(|i| t.cols[i].name == c.name) {
                    return "NULL".into();
                }
                if self.p(0.2) {
                    self.value(c.ty, !c.not_null, false)
                } else {
                    let s = self.pick_col(&src);
                    s.name
                }
            })
            .collect();
        let w = if self.p(0.6) {
            format!(" WHERE {}", self.pred(&src, None, true))
        } else {
            String::new()
        };
        let or = self.conflict(t);
        let sql = format!(
            "INSERT {or}INTO {}({}) SELECT {} FROM {}{w} ORDER BY {} LIMIT {}",
            t.name,
            names.join(", "),
            exprs.join(", "),
            src.name,
            order_all(exprs.len()),
            self.range(1, 500)
        );
        (sql, vec!["insert", "insert_select"])
    }

    fn update(&mut self, t: &Table) -> (String, Compare, Vec<&'static str>) {
        let mut tags = vec!["update"];
        let n = if self.p(0.7) { 1 } else { 2 };
        let cols = self.pick_cols(t, n);
        let sets: Vec<String> = cols
            .iter()
            .map(|c| {
                let e = match self.below(12) {
                    0..4 => self.value(c.ty, !c.not_null, false),
                    4 => format!("{} + {}", c.name, self.range(1, 100)),
                    5 => format!("{} || 'u'", c.name),
                    6 => format!("substr({}, 2)", c.name),
                    7 => format!("-{}", c.name),
                    8 => format!(
                        "CASE WHEN {0} IS NULL THEN {1} ELSE {0} END",
                        c.name,
                        self.value(c.ty, false, false)
                    ),
                    9 => {
                        let Some(t2) = self.pick_table() else {
                            return format!("{0} = {0}", c.name);
                        };
                        let c2 = self.pick_col(&t2);
                        format!("(SELECT max({}) FROM {})", c2.name, t2.name)
                    }
                    10 if t.has_rowid() => {
                        // Large values go to a few rows only (below).
                        tags.push("big_value");
                        self.big_value(c.ty)
                    }
                    _ => "NULL".into(),
                };
                format!("{} = {e}", c.name)
            })
            .collect();
        let w = if tags.contains(&"big_value") {
            format!(
                " WHERE rowid IN (SELECT rowid FROM {} ORDER BY rowid LIMIT {} OFFSET {})",
                t.name,
                self.range(1, 4),
                self.range(0, 50)
            )
        } else if self.p(0.95) {
            format!(" WHERE {}", self.pred(t, None, true))
        } else {
            String::new()
        };
        let or = self.conflict(t);
        let (ret, cmp) = self.returning(t);
        let sql = format!("UPDATE {or}{} SET {}{w}{ret}", t.name, sets.join(", "));
        (sql, cmp, tags)
    }

    fn delete(&mut self, t: &Table) -> (String, Compare, Vec<&'static str>) {
        let (ret, cmp) = self.returning(t);
        let sql = match self.below(20) {
            0 => format!("DELETE FROM {}{ret}", t.name),
            1..4 if t.has_rowid() => format!(
                "DELETE FROM {0} WHERE rowid IN (SELECT rowid FROM {0} ORDER BY rowid{1} LIMIT {2}){ret}",
                t.name,
                if self.p(0.5) { " DESC" } else { "" },
                self.range(1, 200)
            ),
            _ => format!(
                "DELETE FROM {} WHERE {}{ret}",
                t.name,
                self.pred(t, None, true)
            ),
        };
        (sql, cmp, vec!["delete"])
    }

    fn select(&mut self) -> (String, Vec<&'static str>) {
        let Some(t) = self.pick_table() else {
            return ("SELECT 1, 'no tables'".into(), vec!["select"]);
        };
        match self.below(22) {
            0..5 => {
                // Plain scan with a WHERE, ORDER BY, maybe LIMIT/OFFSET.
                let (list, n) = if self.p(0.2) {
                    ("*".to_string(), t.cols.len())
                } else {
                    let k = self.below(t.cols.len().min(4)) + 1;
                    let cols = self.pick_cols(&t, k);
                    let e: Vec<String> = cols.iter().map(|c| self.col_expr(c, None)).collect();
                    (e.join(", "), k)
                };
                let w = if self.p(0.8) {
                    format!(" WHERE {}", self.pred(&t, None, true))
                } else {
                    String::new()
                };
                let lim = if self.p(0.4) {
                    format!(" LIMIT {} OFFSET {}", self.range(1, 50), self.range(0, 30))
                } else {
                    String::new()
                };
                let distinct = if self.p(0.1) { "DISTINCT " } else { "" };
                (
                    format!(
                        "SELECT {distinct}{list} FROM {}{w} ORDER BY {}{lim}",
                        t.name,
                        order_all(n)
                    ),
                    vec!["select"],
                )
            }
            5..7 => {
                // Whole-table aggregates.
                let k = self.below(4) + 1;
                let mut e = vec!["count(*)".to_string()];
                for _ in 0..k {
                    let c = self.pick_col(&t);
                    e.push(self.agg_expr(&c, None));
                }
                let w = if self.p(0.5) {
                    format!(" WHERE {}", self.pred(&t, None, true))
                } else {
                    String::new()
                };
                (
                    format!("SELECT {} FROM {}{w}", e.join(", "), t.name),
                    vec!["select", "aggregate"],
                )
            }
            7..10 => {
                // GROUP BY / HAVING.
                let g = self.pick_col(&t);
                let key = match self.below(4) {
                    0 => format!("abs({}) % {}", g.name, self.range(2, 12)),
                    1 => format!("typeof({})", g.name),
                    2 => format!("length({}) / 10", g.name),
                    _ => g.name.clone(),
                };
                let mut e = vec![key.clone(), "count(*)".to_string()];
                for _ in 0..self.below(3) + 1 {
                    let c = self.pick_col(&t);
                    e.push(self.agg_expr(&c, None));
                }
                let w = if self.p(0.4) {
                    format!(" WHERE {}", self.pred(&t, None, false))
                } else {
                    String::new()
                };
                let having = if self.p(0.3) {
                    format!(" HAVING count(*) > {}", self.range(0, 5))
                } else {
                    String::new()
                };
                let lim = if self.p(0.3) {
                    format!(" LIMIT {}", self.range(1, 20))
                } else {
                    String::new()
                };
                (
                    format!(
                        "SELECT {} FROM {}{w} GROUP BY {key}{having} ORDER BY {}{lim}",
                        e.join(", "),
                        t.name,
                        order_all(e.len())
                    ),
                    vec!["select", "aggregate", "group_by"],
                )
            }
            10..14 => self.select_join(&t),
            14..17 => self.select_subquery(&t),
            17 => {
                let t2 = self.pick_table().unwrap_or_else(|| t.clone());
                let c1 = self.pick_col(&t);
                let c2 = self.pick_col(&t2);
                let op = *self.pick(&["UNION", "UNION ALL", "INTERSECT", "EXCEPT"]);
                let w1 = self.pred(&t, None, false);
                let w2 = self.pred(&t2, None, false);
                (
                    format!(
                        "SELECT {} FROM {} WHERE {w1} {op} SELECT {} FROM {} WHERE {w2} ORDER BY 1 LIMIT {}",
                        c1.name,
                        t.name,
                        c2.name,
                        t2.name,
                        self.range(1, 300)
                    ),
                    vec!["select", "compound"],
                )
            }
            18 => {
                // Window functions (peers make every frame deterministic).
                let a = self.pick_col(&t);
                let b = self.pick_col(&t);
                let c = self.pick_col(&t);
                let f = match self.below(4) {
                    0 => format!("rank() OVER (ORDER BY {})", a.name),
                    1 => format!(
                        "dense_rank() OVER (PARTITION BY {} ORDER BY {})",
                        b.name, a.name
                    ),
                    2 => format!("count(*) OVER (PARTITION BY {})", b.name),
                    _ => format!(
                        "sum(length({})) OVER (PARTITION BY {} ORDER BY {})",
                        c.name, b.name, a.name
                    ),
                };
                (
                    format!(
                        "SELECT {}, {}, {f} FROM {} ORDER BY 1, 2, 3 LIMIT {}",
                        a.name,
                        b.name,
                        t.name,
                        self.range(1, 200)
                    ),
                    vec!["select", "window"],
                )
            }
            19 => {
                let n = self.range(1, 60);
                let c = self.pick_col(&t);
                (
                    format!(
                        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < {n}) \
                         SELECT x, (SELECT count(*) FROM {} WHERE {} = x) FROM r ORDER BY 1, 2",
                        t.name, c.name
                    ),
                    vec!["select", "cte"],
                )
            }
            20 => {
                if !self.schema.views.is_empty() && self.p(0.7) {
                    let v = self.pick(&self.schema.views.clone()).clone();
                    (
                        format!(
                            "SELECT * FROM {} ORDER BY {} LIMIT {}",
                            v.name,
                            order_all(v.ncols),
                            self.range(1, 100)
                        ),
                        vec!["select", "view"],
                    )
                } else {
                    (
                        format!(
                            "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{}') ORDER BY 1, 2, 3, 4",
                            t.name
                        ),
                        vec!["select", "schema"],
                    )
                }
            }
            _ => (
                "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY 1, 2, 3, 4".into(),
                vec!["select", "schema"],
            ),
        }
    }

    fn select_join(&mut self, t: &Table) -> (String, Vec<&'static str>) {
        let t2 = self.pick_table().unwrap_or_else(|| t.clone());
        let a_src = self.limited(t, 40);
        let b_src = if self.p(0.5) {
            t2.name.clone()
        } else {
            self.limited(&t2, 300)
        };
        let ca = self.pick_col(t);
        let cb = self.pick_col(&t2);
        let kind = *self.pick(&["JOIN", "LEFT JOIN", "JOIN", "CROSS JOIN"]);
        let on = if kind == "CROSS JOIN" {
            String::new()
        } else {
            format!(" ON a.{} = b.{}", ca.name, cb.name)
        };
        let mut e = Vec::new();
        for _ in 0..self.below(3) + 1 {
            let c = self.pick_col(t);
            e.push(self.col_expr(&c, Some("a")));
        }
        for _ in 0..self.below(3) + 1 {
            let c = self.pick_col(&t2);
            e.push(self.col_expr(&c, Some("b")));
        }
        let (cross_b, lim) = if kind == "CROSS JOIN" {
            (self.limited(&t2, 20), " LIMIT 200".to_string())
        } else {
            (b_src, format!(" LIMIT {}", self.range(1, 500)))
        };
        let w = if self.p(0.5) {
            format!(" WHERE {}", self.pred(t, Some("a"), false))
        } else {
            String::new()
        };
        let mut tags = vec!["select", "join"];
        let sql = if self.p(0.25) {
            tags.push("aggregate");
            let g = e[0].clone();
            let agg = self.agg_expr(&cb, Some("b"));
            format!(
                "SELECT {g}, count(*), {agg} FROM {a_src} AS a {kind} {cross_b} AS b{on}{w} GROUP BY 1 ORDER BY 1, 2, 3{lim}"
            )
        } else {
            format!(
                "SELECT {} FROM {a_src} AS a {kind} {cross_b} AS b{on}{w} ORDER BY {}{lim}",
                e.join(", "),
                order_all(e.len())
            )
        };
        (sql, tags)
    }

    fn select_subquery(&mut self, t: &Table) -> (String, Vec<&'static str>) {
        let t2 = self.pick_table().unwrap_or_else(|| t.clone());
        let c = self.pick_col(t);
        let c2 = self.pick_col(&t2);
        let tags = vec!["select", "subquery"];
        let sql = match self.below(4) {
            0 => {
                let w = self.pred(&t2, None, false);
                format!(
                    "SELECT {0}, count(*) FROM {1} WHERE {0} IN (SELECT {2} FROM {3} WHERE {w}) GROUP BY {0} ORDER BY 1, 2",
                    c.name, t.name, c2.name, t2.name
                )
            }
            1 => {
                let src = self.limited(t, 30);
                format!(
                    "SELECT a.{0}, (SELECT count(*) FROM {1} AS b WHERE b.{2} = a.{0}) FROM {src} AS a ORDER BY 1, 2",
                    c.name, t2.name, c2.name
                )
            }
            2 => {
                let src = self.limited(t, 30);
                format!(
                    "SELECT a.{0} FROM {src} AS a WHERE {1}EXISTS (SELECT 1 FROM {2} AS b WHERE b.{3} = a.{0}) ORDER BY 1",
                    c.name,
                    if self.p(0.3) { "NOT " } else { "" },
                    t2.name,
                    c2.name
                )
            }
            _ => {
                let m = self.range(2, 9);
                format!(
                    "SELECT k, count(*), min(v), max(v) FROM (SELECT abs({0}) % {m} AS k, {0} AS v FROM {1}) GROUP BY k ORDER BY 1, 2, 3, 4",
                    c.name, t.name
                )
            }
        };
        (sql, tags)
    }

    fn invalid(&mut self) -> (String, Vec<&'static str>) {
        let t = self.pick_table();
        let sql = match (self.below(8), t) {
            (0, _) => "SELECT * FROM no_such_table".to_string(),
            (1, _) => "SELEC 1".to_string(),
            (2, Some(t)) => format!("INSERT INTO {} VALUES (1, 2, 3, 4, 5, 6, 7, 8)", t.name),
            (3, Some(t)) => format!("CREATE TABLE {}(a)", t.name),
            (4, Some(t)) => format!("UPDATE {} SET no_such_col = 1", t.name),
            (5, _) => "DROP INDEX no_such_index".to_string(),
            (6, Some(t)) => format!("SELECT no_such_col FROM {}", t.name),
            _ => "SELECT 1 +".to_string(),
        };
        (sql, vec!["invalid"])
    }

    // ----------------------------------------------------------------
    // The stream

    /// The next statement. Report its outcome with
    /// [`Generator::observe`] before asking for another.
    pub fn next_stmt(&mut self) -> Stmt {
        assert!(
            self.pending.is_none(),
            "observe() the previous statement first"
        );
        let conn = if self.cfg.connections > 1 && self.p(0.25) {
            1
        } else {
            0
        };
        let (sql, effect, compare, tags) = if conn == 1 {
            if self.tx.is_some() {
                self.read_only()
            } else {
                self.regular(false)
            }
        } else {
            self.conn0()
        };
        if conn == 0 {
            if let Some(tx) = &mut self.tx {
                tx.len += 1;
            }
        }
        debug_assert!(!sql.contains('\n'));
        self.pending = Some(effect);
        Stmt {
            conn,
            sql,
            compare,
            tags,
        }
    }

    fn read_only(&mut self) -> (String, Effect, Compare, Vec<&'static str>) {
        match self.below(20) {
            0 => (
                "PRAGMA integrity_check".into(),
                Effect::None,
                Compare::Rows,
                vec!["integrity_check"],
            ),
            1 => (
                "PRAGMA wal_checkpoint(PASSIVE)".into(),
                Effect::None,
                Compare::SuccessOnly,
                vec!["checkpoint"],
            ),
            _ => {
                let (s, tags) = self.select();
                (s, Effect::None, Compare::Rows, tags)
            }
        }
    }

    fn conn0(&mut self) -> (String, Effect, Compare, Vec<&'static str>) {
        let Some(tx) = self.tx.clone() else {
            let r = self.below(100);
            if r < 6 {
                let kw = *self.pick(&["", "DEFERRED ", "IMMEDIATE ", "EXCLUSIVE "]);
                let tr = if self.p(0.5) { " TRANSACTION" } else { "" };
                return (
                    format!("BEGIN {kw}{tr}").trim_end().replace("  ", " "),
                    Effect::Begin,
                    Compare::Rows,
                    vec!["begin"],
                );
            }
            if r < 8 {
                let name = self.fresh("sp");
                return (
                    format!("SAVEPOINT {name}"),
                    Effect::Savepoint(name),
                    Compare::Rows,
                    vec!["savepoint"],
                );
            }
            return self.regular(false);
        };
        if tx.len >= tx.target && self.p(0.5) {
            if !tx.savepoints.is_empty() && self.p(0.3) {
                // Unwind through savepoints first.
                let (name, _) = tx.savepoints[0].clone();
                return if self.p(0.5) {
                    (
                        format!("RELEASE {name}"),
                        Effect::Release(name),
                        Compare::Rows,
                        vec!["release"],
                    )
                } else {
                    (
                        format!("ROLLBACK TO {name}"),
                        Effect::RollbackTo(name),
                        Compare::Rows,
                        vec!["rollback_to"],
                    )
                };
            }
            return if self.p(0.7) {
                let s = *self.pick(&["COMMIT", "END", "COMMIT TRANSACTION"]);
                (s.into(), Effect::Commit, Compare::Rows, vec!["commit"])
            } else {
                (
                    "ROLLBACK".into(),
                    Effect::Rollback,
                    Compare::Rows,
                    vec!["rollback"],
                )
            };
        }
        if self.p(0.1) {
            let depth = tx.savepoints.len();
            let r = self.below(10);
            if depth < 5 && (r < 5 || depth == 0) {
                let name = self.fresh("sp");
                return (
                    format!("SAVEPOINT {name}"),
                    Effect::Savepoint(name),
                    Compare::Rows,
                    vec!["savepoint"],
                );
            }
            let i = self.below(depth);
            let (name, _) = tx.savepoints[i].clone();
            return if r < 7 {
                (
                    format!("RELEASE SAVEPOINT {name}"),
                    Effect::Release(name),
                    Compare::Rows,
                    vec!["release"],
                )
            } else {
                (
                    format!("ROLLBACK TO SAVEPOINT {name}"),
                    Effect::RollbackTo(name),
                    Compare::Rows,
                    vec!["rollback_to"],
                )
            };
        }
        if self.p(0.005) {
            // Invalid inside a transaction on both engines.
            let s = *self.pick(&["VACUUM", "BEGIN", "RELEASE no_such_savepoint"]);
            return (s.into(), Effect::None, Compare::Rows, vec!["invalid"]);
        }
        self.regular(true)
    }

    /// Any statement but transaction control. `in_tx`: connection 0 runs
    /// it inside its transaction (so no VACUUM).
    fn regular(&mut self, in_tx: bool) -> (String, Effect, Compare, Vec<&'static str>) {
        let Some(t) = self.pick_table() else {
            let (s, e, tags) = self.create_table();
            return (s, e, Compare::Rows, tags);
        };
        let ntables = self.schema.tables.len();
        let r = self.below(1000);
        let rows = |(s, tags): (String, Vec<&'static str>)| (s, Effect::None, Compare::Rows, tags);
        match r {
            0..40 => {
                if ntables < 8 && (ntables < 3 || self.p(0.6)) {
                    let (s, e, tags) = self.create_table();
                    (s, e, Compare::Rows, tags)
                } else if ntables >= 8 && self.p(0.3) {
                    self.drop_table(&t)
                } else {
                    rows(self.select())
                }
            }
            40..45 => {
                let (s, e, tags) = self.create_table_as(&t);
                (s, e, Compare::Rows, tags)
            }
            45..85 => {
                let (s, e, tags) = self.create_index(&t);
                (s, e, Compare::Rows, tags)
            }
            85..95 => {
                if t.temp {
                    return rows(self.select());
                }
                let (s, e, tags) = self.create_view(&t);
                (s, e, Compare::Rows, tags)
            }
            95..110 => {
                if self.schema.indexes.is_empty() || self.p(0.1) {
                    (
                        format!("DROP INDEX IF EXISTS i{}", self.range(1, 50)),
                        Effect::None,
                        Compare::Rows,
                        vec!["drop_index"],
                    )
                } else {
                    let ix = self.pick(&self.schema.indexes.clone()).clone();
                    (
                        format!("DROP INDEX {}", ix.name),
                        Effect::DropIndex(ix.name),
                        Compare::Rows,
                        vec!["drop_index"],
                    )
                }
            }
            110..120 => {
                if ntables > 5 && self.p(0.5) {
                    self.drop_table(&t)
                } else {
                    rows(self.select())
                }
            }
            120..125 => {
                if self.schema.views.is_empty() {
                    rows(self.select())
                } else {
                    let v = self.pick(&self.schema.views.clone()).clone();
                    (
                        format!("DROP VIEW {}", v.name),
                        Effect::DropView(v.name),
                        Compare::Rows,
                        vec!["drop_view"],
                    )
                }
            }
            125..140 => {
                let (s, e, tags) = self.alter(&t);
                (s, e, Compare::Rows, tags)
            }
            140..300 => {
                let (s, c, tags) = self.insert(&t);
                (s, Effect::None, c, tags)
            }
            300..330 => {
                let (s, c, tags) = self.upsert(&t);
                (s, Effect::None, c, tags)
            }
            330..380 => rows(self.insert_recursive(&t)),
            380..410 => rows(self.insert_select(&t)),
            410..500 => {
                let (s, c, tags) = self.update(&t);
                (s, Effect::None, c, tags)
            }
            500..560 => {
                let (s, c, tags) = self.delete(&t);
                (s, Effect::None, c, tags)
            }
            560..860 => rows(self.select()),
            860..868 => {
                if in_tx {
                    rows(self.select())
                } else {
                    ("VACUUM".into(), Effect::None, Compare::Rows, vec!["vacuum"])
                }
            }
            868..900 => {
                let mode = *self.pick(&["", "(PASSIVE)", "(FULL)", "(RESTART)", "(TRUNCATE)"]);
                (
                    format!("PRAGMA wal_checkpoint{mode}"),
                    Effect::None,
                    Compare::SuccessOnly,
                    vec!["checkpoint"],
                )
            }
            900..915 => (
                if self.p(0.8) {
                    "PRAGMA integrity_check"
                } else {
                    "PRAGMA quick_check"
                }
                .into(),
                Effect::None,
                Compare::Rows,
                vec!["integrity_check"],
            ),
            915..935 => {
                let s = match self.below(6) {
                    0 => "PRAGMA page_count".to_string(),
                    1 => "PRAGMA freelist_count".to_string(),
                    2 => format!(
                        "PRAGMA auto_vacuum = {}",
                        self.pick(&["NONE", "FULL", "INCREMENTAL"])
                    ),
                    3 => format!("PRAGMA incremental_vacuum({})", self.range(0, 100)),
                    4 => format!("PRAGMA cache_size = {}", self.pick(&["10", "100", "-2000"])),
                    _ => "PRAGMA journal_mode".to_string(),
                };
                (s, Effect::None, Compare::Rows, vec!["pragma"])
            }
            935..945 => (
                if self.p(0.7) {
                    "ANALYZE".to_string()
                } else {
                    format!("REINDEX {}", t.name)
                },
                Effect::None,
                Compare::Rows,
                vec!["analyze"],
            ),
            945..960 => {
                let (s, tags) = self.invalid();
                (s, Effect::None, Compare::Rows, tags)
            }
            _ => rows(self.select()),
        }
    }

    fn drop_table(&mut self, t: &Table) -> (String, Effect, Compare, Vec<&'static str>) {
        (
            format!(
                "DROP TABLE {}{}",
                if self.p(0.2) { "IF EXISTS " } else { "" },
                t.name
            ),
            Effect::DropTable(t.name.clone()),
            Compare::Rows,
            vec!["drop_table"],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(seed: u64, n: usize) -> Vec<Stmt> {
        let mut g = Generator::new(
            seed,
            Config {
                connections: 2,
                ..Config::default()
            },
        );
        let mut out = Vec::new();
        for _ in 0..n {
            let s = g.next_stmt();
            // Pretend every valid statement succeeds.
            g.settle(!s.tags.contains(&"invalid"));
            out.push(s);
        }
        out
    }

    #[test]
    fn same_seed_same_statements() {
        let a: Vec<String> = stream(7, 300).into_iter().map(|s| s.sql).collect();
        let b: Vec<String> = stream(7, 300).into_iter().map(|s| s.sql).collect();
        let c: Vec<String> = stream(8, 300).into_iter().map(|s| s.sql).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn no_nondeterministic_functions() {
        for s in stream(3, 3000) {
            let l = s.sql.to_ascii_lowercase();
            for bad in ["random", "now", "current_", "julianday", "changes()"] {
                assert!(!l.contains(bad), "{bad} in {}", s.sql);
            }
        }
    }
}
