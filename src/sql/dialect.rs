//! sluice's SQL dialect: splits a request into statements and parses our own
//! statements (`CREATE SOURCE / STREAM / QUERY`, `DROP`, `SHOW`, `EXPLAIN`) and the
//! streaming `WINDOW` clause. The SELECT inside is standard SQL, parsed by
//! sqlparser (the version DataFusion re-exports) and planned by DataFusion.
//!
//! Pure: text in, [`Parsed`] statements or a [`SqlError`] with line and column out.
//!
//! How the WINDOW clause slots in: the statement is tokenized once; a top-level
//! `WINDOW SLIDING | TUMBLING | CUMULATIVE ...` (not SQL's named `WINDOW w AS (...)`)
//! is cut out at the token level and parsed here; the remaining tokens are the
//! query that DataFusion plans. So `... GROUP BY w WINDOW SLIDING 60s EVERY 5s
//! ORDER BY n` and a WINDOW clause at the very end both work.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast::{self, Query};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{
    Location, Token, TokenWithSpan, Tokenizer, Whitespace,
};

use crate::source::decode::Format;
use crate::time::{duration_from_parts, unit_millis, Interval};

/// A user error in SQL, with the 1-based line and column where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    pub message: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

impl SqlError {
    pub fn new(message: impl Into<String>) -> SqlError {
        SqlError {
            message: message.into(),
            line: None,
            column: None,
        }
    }

    pub fn at(message: impl Into<String>, loc: Location) -> SqlError {
        let known = loc.line > 0;
        SqlError {
            message: message.into(),
            line: known.then_some(loc.line),
            column: known.then_some(loc.column),
        }
    }

    /// Keeps the first location found: an inner error knows better.
    pub fn or_at(mut self, loc: Location) -> SqlError {
        if self.line.is_none() && loc.line > 0 {
            self.line = Some(loc.line);
            self.column = Some(loc.column);
        }
        self
    }

    /// From sqlparser's errors, whose messages end in `at Line: L, Column: C`.
    fn from_parser(e: ParserError) -> SqlError {
        let text = match e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
            ParserError::RecursionLimitExceeded => {
                return SqlError::new("statement is nested too deeply (recursion limit exceeded)")
            }
        };
        match text.rfind(" at Line: ") {
            Some(i) => {
                let (message, place) = text.split_at(i);
                let mut numbers = place
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|s| !s.is_empty())
                    .filter_map(|s| s.parse::<u64>().ok());
                let line = numbers.next();
                let column = numbers.next();
                SqlError {
                    message: message.to_string(),
                    line,
                    column,
                }
            }
            None => SqlError::new(text),
        }
    }
}

/// A name as written, normalized (unquoted names are lower-cased, as DataFusion does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub value: String,
    pub at: Location,
}

/// What `DROP` and `SHOW` address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Source,
    Stream,
    Query,
    Sink,
    Table,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Source => "source",
            ObjectKind::Stream => "stream",
            ObjectKind::Query => "query",
            ObjectKind::Sink => "sink",
            ObjectKind::Table => "table",
        }
    }
}

/// One declared column of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
}

/// `FROM <kind> ...` of `CREATE SOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceFrom {
    Tcp { addr: String },
    Http,
    Generator,
    Kafka { brokers: String, topic: String },
    Directory { path: String, at: Location },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateSource {
    pub name: Name,
    pub columns: Vec<ColumnSpec>,
    pub from: SourceFrom,
    pub format: Format,
    /// `WITH (key = value, ...)`: keys lower-cased, values as text.
    pub options: Vec<(String, String)>,
}

/// How results are emitted for a cumulative query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Complete,
    Updates,
}

/// The streaming WINDOW clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Sliding { length: Interval, slide: Interval },
    Tumbling { length: Interval },
    Cumulative { ttl: Option<Interval>, emit: Emit },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowClause {
    pub window: Window,
    pub at: Location,
}

/// A continuous query: the SELECT and its WINDOW clause, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryBody {
    pub query: Box<Query>,
    pub window: Option<WindowClause>,
    /// The SELECT's text as written (WINDOW clause included).
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    CreateSource(CreateSource),
    CreateStream {
        name: Name,
        body: QueryBody,
    },
    CreateQuery {
        name: Option<Name>,
        options: Vec<(String, String)>,
        body: QueryBody,
    },
    Drop {
        kind: ObjectKind,
        name: Name,
        if_exists: bool,
    },
    Show(ObjectKind),
    Explain(QueryBody),
    CreateSink(CreateSink),
    CreateTable(CreateTable),
}

/// `CREATE TABLE name (cols) FROM FILE 'path' FORMAT CSV | JSON | PARQUET`: a
/// static table, read once.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    pub name: Name,
    pub columns: Vec<ColumnSpec>,
    pub path: String,
    pub path_at: Location,
    /// None: PARQUET.
    pub format: Option<Format>,
}

/// `CREATE SINK name FROM query INTO <target>`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSink {
    pub name: Name,
    pub query: Name,
    pub into: SinkInto,
}

/// The `INTO ...` of `CREATE SINK`.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkInto {
    /// `KAFKA 'brokers' TOPIC 't' [FORMAT JSON] [KEY column]`
    Kafka {
        brokers: String,
        topic: String,
        key: Option<Name>,
    },
    /// `LOG`
    Log,
    /// `FILES 'prefix' [FORMAT JSON | CSV]` (JSON by default)
    Files {
        prefix: String,
        at: Location,
        csv: bool,
    },
    /// `WEBHOOK 'http://...'`
    Webhook { url: String },
    /// `PARQUET 'dir'`
    Parquet { dir: String, at: Location },
    /// `POSTGRES 'postgres://...' TABLE 't' [KEY (col, ...)]`
    Postgres {
        url: String,
        table: String,
        key: Option<Vec<Name>>,
    },
}

/// One statement of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub statement: Statement,
    /// The statement's own text, without the `;`.
    pub sql: String,
    pub at: Location,
}

/// Splits `text` at top-level semicolons and parses every statement. Fails on the
/// first error, with the 1-based index of the statement that holds it; a request
/// with an error anywhere applies nothing.
pub fn parse(text: &str) -> Result<Vec<Parsed>, (usize, SqlError)> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| {
            // The statement is not tokenized yet: count the semicolons before the error.
            let before = &text[..offset(text, e.location)];
            (
                1 + before.matches(';').count(),
                SqlError::at(strip_location(&e.message), e.location),
            )
        })?;
    let mut out = Vec::new();
    let mut cursor = TextCursor::new(text);
    for statement in tokens.split(|t| t.token == Token::SemiColon) {
        let meaningful: Vec<TokenWithSpan> = statement
            .iter()
            .filter(|t| !is_blank(&t.token))
            .cloned()
            .collect();
        let (Some(first), Some(last)) = (meaningful.first(), meaningful.last()) else {
            continue;
        };
        let (a, b) = (
            cursor.offset(first.span.start),
            cursor.offset(last.span.end),
        );
        let sql = text.get(a..b).unwrap_or_default().to_string();
        let at = first.span.start;
        let end = last.span.end;
        let index = out.len() + 1;
        check_nesting(&meaningful).map_err(|e| (index, e))?;
        // The statement's own text starts here: slices of it need not walk from
        // the start of the request.
        let origin = TextCursor {
            text,
            byte: a,
            line: first.span.start.line,
            column: first.span.start.column,
        };
        let statement = StatementParser {
            tokens: meaningful,
            origin,
        }
        .parse()
        .map_err(|e| (index, e.or_at(end)))?;
        out.push(Parsed { statement, sql, at });
    }
    if out.is_empty() {
        return Err((1, SqlError::new("no SQL statement found in the request")));
    }
    Ok(out)
}

/// `host:port` with a host and a port from 1 to 65535 (`[v6]:port` too).
fn check_host_port(addr: &str, what: &str, example: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("{what} '{addr}' needs a port, as in '{example}'"));
    };
    if host.trim().is_empty() {
        return Err(format!("{what} '{addr}' has no host, as in '{example}'"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!(
            "{what} '{addr}': port '{port}' is not a number from 1 to 65535"
        )),
    }
}

/// Most brackets open at once in a statement. sqlparser's own recursion limit
/// answers deeper nesting, but near it some forms (`ARRAY[ARRAY[...]]`) make it
/// backtrack for minutes: refuse those first.
pub const MAX_BRACKETS: usize = 32;
/// Most `[` open at once. sqlparser re-parses the suffix of a `.` access chain
/// when its first try fails, once per enclosing subscript: text like
/// `a.b[c.d[e.f[...` costs five times more per level (8 levels took 6 s, found
/// by the fuzzer). Real SQL rarely nests subscripts or array literals deeper.
pub const MAX_SQUARE_BRACKETS: usize = 4;
/// Deepest expression tree accepted (a chain `a + b + c ...` is as deep as it is
/// long). DataFusion plans and prints expressions recursively; deeper trees could
/// exhaust the stack.
pub const MAX_EXPRESSION_DEPTH: usize = 128;

fn check_nesting(tokens: &[TokenWithSpan]) -> Result<(), SqlError> {
    let (mut depth, mut square) = (0usize, 0usize);
    for t in tokens {
        match t.token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth += 1;
                if t.token == Token::LBracket {
                    square += 1;
                }
                let refused = if depth > MAX_BRACKETS {
                    format!("more than {MAX_BRACKETS} brackets open at once")
                } else if square > MAX_SQUARE_BRACKETS {
                    format!("more than {MAX_SQUARE_BRACKETS} '[' open at once")
                } else {
                    continue;
                };
                return Err(SqlError::at(
                    format!("statement is nested too deeply: {refused}"),
                    t.span.start,
                ));
            }
            Token::RParen | Token::RBrace => depth = depth.saturating_sub(1),
            Token::RBracket => {
                depth = depth.saturating_sub(1);
                square = square.saturating_sub(1);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a query whose expressions nest deeper than [`MAX_EXPRESSION_DEPTH`].
fn check_depth(query: &ast::Query) -> Result<(), SqlError> {
    use datafusion::sql::sqlparser::ast::{Spanned, Visit, Visitor};
    use std::ops::ControlFlow;
    struct Depth {
        now: usize,
    }
    impl Visitor for Depth {
        type Break = SqlError;
        fn pre_visit_expr(&mut self, expr: &ast::Expr) -> ControlFlow<SqlError> {
            self.now += 1;
            if self.now > MAX_EXPRESSION_DEPTH {
                return ControlFlow::Break(SqlError::at(
                    format!(
                        "statement is nested too deeply: an expression more than {MAX_EXPRESSION_DEPTH} levels deep (a long chain of OR or + counts one level per term; for many alternatives use IN (...))"
                    ),
                    expr.span().start,
                ));
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _: &ast::Expr) -> ControlFlow<SqlError> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
    }
    match query.visit(&mut Depth { now: 0 }) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn strip_location(message: &str) -> String {
    match message.rfind(" at Line: ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn is_blank(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_) | Token::EOF)
}

fn offset(text: &str, loc: Location) -> usize {
    TextCursor::new(text).offset(loc)
}

/// Turns locations (1-based line and column, columns in characters) into byte offsets by walking the text forward from the last
/// location asked for: asking in order (as statements and tokens come) costs one
/// pass over the text in all, not one pass per location.
#[derive(Clone)]
struct TextCursor<'a> {
    text: &'a str,
    byte: usize,
    line: u64,
    column: u64,
}

impl<'a> TextCursor<'a> {
    fn new(text: &'a str) -> TextCursor<'a> {
        TextCursor {
            text,
            byte: 0,
            line: 1,
            column: 1,
        }
    }

    fn offset(&mut self, loc: Location) -> usize {
        if (loc.line, loc.column) < (self.line, self.column) {
            *self = TextCursor::new(self.text);
        }
        for (i, c) in self.text[self.byte..].char_indices() {
            if self.line == loc.line && self.column == loc.column {
                self.byte += i;
                return self.byte;
            }
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        self.byte = self.text.len();
        self.text.len()
    }
}

/// Parses one statement's tokens (whitespace removed).
struct StatementParser<'a> {
    tokens: Vec<TokenWithSpan>,
    /// Where the statement starts in the request's text.
    origin: TextCursor<'a>,
}

impl StatementParser<'_> {
    fn parse(self) -> Result<Statement, SqlError> {
        let first = word_at(&self.tokens, 0);
        let second = word_at(&self.tokens, 1);
        match (first.as_deref(), second.as_deref()) {
            (Some("CREATE"), Some("SOURCE")) => self.create_source(),
            (Some("CREATE"), Some("STREAM")) => self.create_stream(),
            (Some("CREATE"), Some("QUERY")) => self.create_query(),
            (Some("CREATE"), Some("SINK")) => self.create_sink(),
            (Some("CREATE"), Some("TABLE")) => self.create_table(),
            (Some("CREATE"), Some("OR")) => Err(self.unsupported(
                "CREATE OR REPLACE is not supported; DROP the object, then CREATE it again",
            )),
            (Some("DROP"), _) => self.drop(),
            (Some("SHOW"), _) => self.show(),
            (Some("EXPLAIN"), _) => Ok(Statement::Explain(self.query_body(1)?)),
            (Some("SELECT" | "WITH" | "VALUES"), _) => {
                Ok(Statement::CreateQuery { name: None, options: Vec::new(), body: self.query_body(0)? })
            }
            _ if self.tokens[0].token == Token::LParen => {
                Ok(Statement::CreateQuery { name: None, options: Vec::new(), body: self.query_body(0)? })
            }
            (Some("CREATE"), Some("EXTERNAL")) => Err(self.unsupported(
                "CREATE EXTERNAL TABLE is refused: it reads files by path; use CREATE TABLE name (...) FROM FILE or CREATE SOURCE ... FROM DIRECTORY, which stay under --data-dir and --allow-path",
            )),
            (Some(word @ ("COPY" | "ATTACH" | "LOAD" | "INSTALL" | "IMPORT" | "EXPORT" | "PRAGMA")), _) => {
                Err(self.unsupported(&format!(
                    "'{word}' is refused: sluice's SQL does not read or write files or reach the network; read files with CREATE SOURCE ... FROM DIRECTORY or CREATE TABLE ... FROM FILE, write them with CREATE SINK ... INTO FILES | PARQUET"
                )))
            }
            (Some(word @ ("SET" | "RESET")), _) => Err(self.unsupported(&format!(
                "'{word}' is refused: engine settings are fixed by the server's command line (see docs/operations.md), not changed by SQL"
            ))),
            (Some("CREATE"), Some(other)) => Err(self.unsupported(&format!(
                "CREATE {other} is not supported; sluice knows CREATE SOURCE, CREATE STREAM, CREATE QUERY, CREATE TABLE and CREATE SINK"
            ))),
            _ => Err(self.unsupported(&format!(
                "unsupported statement '{}'; sluice knows CREATE SOURCE | STREAM | QUERY | TABLE | SINK, SELECT, DROP, SHOW and EXPLAIN",
                self.tokens[0].token
            ))),
        }
    }

    fn unsupported(&self, message: &str) -> SqlError {
        SqlError::at(message, self.tokens[0].span.start)
    }

    fn parser(&self, from: usize) -> Parser<'static> {
        static DIALECT: GenericDialect = GenericDialect {};
        Parser::new(&DIALECT).with_tokens_with_locations(self.tokens[from..].to_vec())
    }

    fn create_source(self) -> Result<Statement, SqlError> {
        let mut p = Cursor::new(self.parser(2));
        let name = p.name("a source name")?;
        let columns = p.columns("the source's columns, as in (line TEXT)")?;
        p.expect_word(
            "FROM",
            "FROM TCP, HTTP, GENERATOR, KAFKA or DIRECTORY and the source's address",
        )?;
        let kind_at = p.location();
        let kind = p.word().ok_or_else(|| {
            SqlError::at(
                "expected a source kind: TCP, HTTP, GENERATOR, KAFKA or DIRECTORY",
                kind_at,
            )
        })?;
        let from = match kind.as_str() {
            "TCP" => {
                let at = p.location();
                let addr = p.string("the address to connect to, as in 'localhost:9999'")?;
                check_host_port(&addr, "TCP address", "localhost:9999")
                    .map_err(|m| SqlError::at(m, at))?;
                SourceFrom::Tcp { addr }
            }
            "HTTP" => SourceFrom::Http,
            "GENERATOR" => SourceFrom::Generator,
            "KAFKA" => {
                let (brokers, topic) = p.kafka_address()?;
                SourceFrom::Kafka { brokers, topic }
            }
            "DIRECTORY" => {
                let at = p.location();
                let path = p.string("the directory to watch, as in 'incoming'")?;
                SourceFrom::Directory { path, at }
            }
            other => {
                return Err(SqlError::at(
                    format!(
                    "unknown source kind '{other}'; use TCP, HTTP, GENERATOR, KAFKA or DIRECTORY"
                ),
                    kind_at,
                ))
            }
        };
        let mut format = None;
        let mut options = Vec::new();
        while !p.at_end() {
            let at = p.location();
            if p.word_is("FORMAT") {
                let f_at = p.location();
                if format.is_some() {
                    return Err(SqlError::at("FORMAT is given twice", at));
                }
                format = Some(match p.word().as_deref() {
                    Some("LINES") => Format::Lines,
                    Some("CSV") => Format::Csv,
                    Some("JSON") => Format::Json,
                    Some("PARQUET") => Format::Parquet,
                    _ => {
                        return Err(SqlError::at(
                            "expected a format: LINES, CSV, JSON or PARQUET",
                            f_at,
                        ))
                    }
                });
            } else if p.word_is("WITH") {
                if !options.is_empty() {
                    return Err(SqlError::at(
                        "WITH is given twice; put all options in one list",
                        at,
                    ));
                }
                options = p.options()?;
            } else {
                return Err(SqlError::at(
                    format!(
                        "unexpected {} after the source definition; expected FORMAT or WITH",
                        p.describe_next()
                    ),
                    at,
                ));
            }
        }
        Ok(Statement::CreateSource(CreateSource {
            name,
            columns,
            from,
            format: format.unwrap_or(Format::Lines),
            options,
        }))
    }

    fn create_table(self) -> Result<Statement, SqlError> {
        let mut p = Cursor::new(self.parser(2));
        let name = p.name("a table name")?;
        let columns = p.columns("the table's columns, as in (id BIGINT, name TEXT)")?;
        p.expect_word("FROM", "FROM FILE 'path'")?;
        p.expect_word("FILE", "FILE 'path' after FROM")?;
        let path_at = p.location();
        let path = p.string("the file to read, as in 'products.csv'")?;
        p.expect_word("FORMAT", "FORMAT CSV, JSON or PARQUET")?;
        let f_at = p.location();
        let format = match p.word().as_deref() {
            Some("CSV") => Some(Format::Csv),
            Some("JSON") => Some(Format::Json),
            Some("PARQUET") => None,
            _ => {
                return Err(SqlError::at(
                    "expected a format: CSV, JSON or PARQUET",
                    f_at,
                ))
            }
        };
        p.expect_end()?;
        Ok(Statement::CreateTable(CreateTable {
            name,
            columns,
            path,
            path_at,
            format,
        }))
    }

    fn create_sink(self) -> Result<Statement, SqlError> {
        let mut p = Cursor::new(self.parser(2));
        let name = p.name("a sink name")?;
        p.expect_word("FROM", "FROM and the query whose results the sink writes")?;
        let query = p.name("the name of a query")?;
        p.expect_word(
            "INTO",
            "INTO KAFKA, LOG, FILES, PARQUET, WEBHOOK or POSTGRES and the target",
        )?;
        let kind_at = p.location();
        let into = match p.word().as_deref() {
            Some("KAFKA") => {
                let (brokers, topic) = p.kafka_address()?;
                let mut key = None;
                while !p.at_end() {
                    let at = p.location();
                    if p.word_is("FORMAT") {
                        let f_at = p.location();
                        if p.word().as_deref() != Some("JSON") {
                            return Err(SqlError::at("a Kafka sink writes FORMAT JSON only", f_at));
                        }
                    } else if p.word_is("KEY") {
                        key = Some(p.name("the column whose value keys each message")?);
                    } else {
                        return Err(SqlError::at(
                            format!(
                                "unexpected {} after the sink definition; expected FORMAT JSON or KEY column",
                                p.describe_next()
                            ),
                            at,
                        ));
                    }
                }
                SinkInto::Kafka {
                    brokers,
                    topic,
                    key,
                }
            }
            Some("LOG") => SinkInto::Log,
            Some("FILES") => {
                let at = p.location();
                let prefix = p.string("the files' path prefix, as in 'out/wordcount'")?;
                let mut csv = false;
                if p.word_is("FORMAT") {
                    let f_at = p.location();
                    csv = match p.word().as_deref() {
                        Some("JSON") => false,
                        Some("CSV") => true,
                        _ => {
                            return Err(SqlError::at("a file sink writes FORMAT JSON or CSV", f_at))
                        }
                    };
                }
                SinkInto::Files { prefix, at, csv }
            }
            Some("WEBHOOK") => {
                let at = p.location();
                let url =
                    p.string("the URL to POST each batch to, as in 'http://localhost:8000/hook'")?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(SqlError::at(
                        format!("webhook URL '{url}' must start with http:// or https://"),
                        at,
                    ));
                }
                SinkInto::Webhook { url }
            }
            Some("PARQUET") => {
                let at = p.location();
                let dir = p.string("the directory of the Parquet files, as in 'out/totals'")?;
                SinkInto::Parquet { dir, at }
            }
            Some("POSTGRES") => {
                let at = p.location();
                let url =
                    p.string("the connection URL, as in 'postgres://user@localhost:5432/db'")?;
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(SqlError::at(
                        format!("PostgreSQL URL '{url}' must start with postgres://"),
                        at,
                    ));
                }
                p.expect_word("TABLE", "TABLE 'name' after the PostgreSQL URL")?;
                let at = p.location();
                let table = p.string("the table's name")?;
                if table.trim().is_empty() {
                    return Err(SqlError::at("the table's name is empty", at));
                }
                let key = if p.word_is("KEY") {
                    p.expect(&Token::LParen, "'(' and the key columns")?;
                    let mut key = vec![p.name("a key column")?];
                    while p.inner.consume_token(&Token::Comma) {
                        key.push(p.name("a key column")?);
                    }
                    p.expect(&Token::RParen, "')' after the key columns")?;
                    Some(key)
                } else {
                    None
                };
                SinkInto::Postgres { url, table, key }
            }
            _ => {
                return Err(SqlError::at(
                    "expected a sink kind: KAFKA, LOG, FILES, PARQUET, WEBHOOK or POSTGRES",
                    kind_at,
                ))
            }
        };
        p.expect_end()?;
        Ok(Statement::CreateSink(CreateSink { name, query, into }))
    }

    fn create_stream(self) -> Result<Statement, SqlError> {
        let mut p = Cursor::new(self.parser(2));
        let name = p.name("a stream name")?;
        p.expect_word("AS", "AS and the stream's SELECT")?;
        let start = 2 + p.inner.index();
        let body = self.query_body(start)?;
        if let Some(w) = body.window {
            return Err(SqlError::at(
                "a derived stream cannot have a WINDOW clause; put the window on the query that reads the stream",
                w.at,
            ));
        }
        Ok(Statement::CreateStream { name, body })
    }

    fn create_query(self) -> Result<Statement, SqlError> {
        let mut p = Cursor::new(self.parser(2));
        let name = p.name("a query name")?;
        let mut options = Vec::new();
        if p.word_is("WITH") {
            options = p.options()?;
        }
        p.expect_word("AS", "AS and the query's SELECT")?;
        let start = 2 + p.inner.index();
        let body = self.query_body(start)?;
        Ok(Statement::CreateQuery {
            name: Some(name),
            options,
            body,
        })
    }

    fn drop(self) -> Result<Statement, SqlError> {
        let mut p = Cursor::new(self.parser(1));
        let at = p.location();
        let kind = match p.word().as_deref() {
            Some("SOURCE") => ObjectKind::Source,
            Some("STREAM") => ObjectKind::Stream,
            Some("QUERY") => ObjectKind::Query,
            Some("SINK") => ObjectKind::Sink,
            Some("TABLE") => ObjectKind::Table,
            _ => {
                return Err(SqlError::at(
                    "expected SOURCE, STREAM, QUERY, TABLE or SINK after DROP",
                    at,
                ))
            }
        };
        let if_exists = if p.word_is("IF") {
            p.expect_word("EXISTS", "EXISTS after IF")?;
            true
        } else {
            false
        };
        let name = p.name(&format!("the name of the {} to drop", kind.name()))?;
        p.expect_end()?;
        Ok(Statement::Drop {
            kind,
            name,
            if_exists,
        })
    }

    fn show(self) -> Result<Statement, SqlError> {
        let mut p = Cursor::new(self.parser(1));
        let at = p.location();
        let kind = match p.word().as_deref() {
            Some("SOURCES") => ObjectKind::Source,
            Some("STREAMS") => ObjectKind::Stream,
            Some("QUERIES") => ObjectKind::Query,
            Some("SINKS") => ObjectKind::Sink,
            Some("TABLES") => ObjectKind::Table,
            _ => {
                return Err(SqlError::at(
                    "expected SOURCES, STREAMS, QUERIES, TABLES or SINKS after SHOW",
                    at,
                ))
            }
        };
        p.expect_end()?;
        Ok(Statement::Show(kind))
    }

    /// The SELECT starting at token `from`, with its WINDOW clause cut out.
    fn query_body(&self, from: usize) -> Result<QueryBody, SqlError> {
        let tokens = &self.tokens[from.min(self.tokens.len())..];
        let (Some(first), Some(last)) = (tokens.first(), tokens.last()) else {
            let at = self
                .tokens
                .last()
                .map(|t| t.span.end)
                .unwrap_or(Location::of(1, 1));
            return Err(SqlError::at("expected a SELECT query", at));
        };
        let mut cursor = self.origin.clone();
        let (a, b) = (
            cursor.offset(first.span.start),
            cursor.offset(last.span.end),
        );
        let sql = self.origin.text.get(a..b).unwrap_or_default().to_string();
        let (query_tokens, window) = split_window(tokens)?;
        static DIALECT: GenericDialect = GenericDialect {};
        let mut parser = Parser::new(&DIALECT).with_tokens_with_locations(query_tokens);
        // An error at the end of input has no location in sqlparser: point after the last token.
        let query = parser
            .parse_query()
            .map_err(|e| SqlError::from_parser(e).or_at(last.span.end))?;
        let rest = parser.next_token();
        if !is_blank(&rest.token) {
            return Err(SqlError::at(
                format!(
                    "unexpected {} after the end of the query",
                    describe(&rest.token)
                ),
                rest.span.start,
            ));
        }
        check_depth(&query)?;
        Ok(QueryBody { query, window, sql })
    }
}

/// Cuts a top-level `WINDOW SLIDING | TUMBLING | CUMULATIVE ...` clause out of a
/// query's tokens: it ends at a top-level ORDER BY or LIMIT, or at the end.
fn split_window(
    tokens: &[TokenWithSpan],
) -> Result<(Vec<TokenWithSpan>, Option<WindowClause>), SqlError> {
    let mut depth = 0i32;
    let mut start = None;
    for (i, t) in tokens.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth == 0 && word_at(tokens, i).as_deref() == Some("WINDOW") => {
                if matches!(
                    word_at(tokens, i + 1).as_deref(),
                    Some("SLIDING" | "TUMBLING" | "CUMULATIVE")
                ) {
                    start = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(start) = start else {
        return Ok((tokens.to_vec(), None));
    };
    let end = (start + 1..tokens.len())
        .find(|&i| matches!(word_at(tokens, i).as_deref(), Some("ORDER" | "LIMIT")))
        .unwrap_or(tokens.len());
    let clause = &tokens[start..end];
    let window = parse_window(clause)?;
    let mut rest = tokens[..start].to_vec();
    rest.extend_from_slice(&tokens[end..]);
    Ok((rest, Some(window)))
}

fn parse_window(clause: &[TokenWithSpan]) -> Result<WindowClause, SqlError> {
    let at = clause[0].span.start;
    let mut c = TokenCursor {
        tokens: clause,
        pos: 1,
    };
    let kind = c.word().unwrap_or_default();
    let window = match kind.as_str() {
        "SLIDING" => {
            let length = c.duration("the window length, as in 60s")?;
            if !c.word_is("EVERY") {
                return Err(c.error("expected EVERY and the slide after the window length, as in WINDOW SLIDING 60s EVERY 5s"));
            }
            let slide = c.duration("the slide, as in 5s")?;
            Window::Sliding { length, slide }
        }
        "TUMBLING" => Window::Tumbling {
            length: c.duration("the window length, as in 1m")?,
        },
        _ => {
            let mut ttl = None;
            let mut emit = Emit::Complete;
            while !c.at_end() {
                if c.word_is("TTL") {
                    ttl = Some(c.duration("the TTL, as in 1h")?);
                } else if c.word_is("EMIT") {
                    emit = match c.word().as_deref() {
                        Some("COMPLETE") => Emit::Complete,
                        Some("UPDATES") => Emit::Updates,
                        _ => return Err(c.error_before("expected COMPLETE or UPDATES after EMIT")),
                    };
                } else {
                    return Err(c.error("expected TTL or EMIT in WINDOW CUMULATIVE"));
                }
            }
            Window::Cumulative { ttl, emit }
        }
    };
    if !c.at_end() {
        return Err(
            c.error("unexpected text after the WINDOW clause; ORDER BY and LIMIT may follow it")
        );
    }
    Ok(WindowClause { window, at })
}

/// A cursor over window-clause tokens (they are not standard SQL).
struct TokenCursor<'a> {
    tokens: &'a [TokenWithSpan],
    pos: usize,
}

impl TokenCursor<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn location(&self) -> Location {
        match self.tokens.get(self.pos) {
            Some(t) => t.span.start,
            None => self
                .tokens
                .last()
                .map(|t| t.span.end)
                .unwrap_or(Location::of(0, 0)),
        }
    }

    fn error(&self, message: &str) -> SqlError {
        SqlError::at(message, self.location())
    }

    fn error_before(&self, message: &str) -> SqlError {
        let loc = self
            .tokens
            .get(self.pos.saturating_sub(1))
            .map(|t| t.span.start)
            .unwrap_or(self.location());
        SqlError::at(message, loc)
    }

    fn word(&mut self) -> Option<String> {
        let w = word_at(self.tokens, self.pos)?;
        self.pos += 1;
        Some(w)
    }

    fn word_is(&mut self, expected: &str) -> bool {
        if word_at(self.tokens, self.pos).as_deref() == Some(expected) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// `60s`, `500ms`, `5 seconds`, `'5s'` or `INTERVAL '5 seconds'`.
    fn duration(&mut self, what: &str) -> Result<Interval, SqlError> {
        let at = self.location();
        let bad = |m: String| SqlError::at(m, at);
        if self.word_is("INTERVAL") {
            return self.duration(what);
        }
        match self.tokens.get(self.pos).map(|t| &t.token) {
            Some(Token::Number(n, _)) => {
                let number = n.clone();
                self.pos += 1;
                let unit = self
                    .tokens
                    .get(self.pos)
                    .and_then(|t| match &t.token {
                        Token::Word(w) => Some(w.value.clone()),
                        _ => None,
                    })
                    .ok_or_else(|| {
                        bad(format!(
                            "duration {number} needs a unit: ms, s, m, h or d, as in {number}s"
                        ))
                    })?;
                self.pos += 1;
                let per_unit = unit_millis(&unit).map_err(|e| bad(e.to_string()))?;
                match duration_from_parts(&number, per_unit) {
                    Some(Ok(d)) => Ok(d),
                    Some(Err(e)) => Err(bad(e.to_string())),
                    None => Err(bad(format!(
                        "invalid duration '{number}{unit}': use whole milliseconds"
                    ))),
                }
            }
            Some(Token::SingleQuotedString(s)) => {
                let s = s.clone();
                self.pos += 1;
                crate::time::parse_duration(&s).map_err(|e| bad(e.to_string()))
            }
            _ => Err(bad(format!("expected {what}"))),
        }
    }
}

/// The upper-cased word at `i`, if that token is an unquoted word.
fn word_at(tokens: &[TokenWithSpan], i: usize) -> Option<String> {
    match tokens.get(i).map(|t| &t.token) {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::EOF => "end of statement".to_string(),
        Token::Whitespace(Whitespace::Newline) => "end of line".to_string(),
        other => format!("'{other}'"),
    }
}

/// A thin layer over sqlparser's `Parser` for our statements' pieces.
struct Cursor {
    inner: Parser<'static>,
}

impl Cursor {
    fn new(inner: Parser<'static>) -> Cursor {
        Cursor { inner }
    }

    fn location(&self) -> Location {
        self.inner.peek_token_ref().span.start
    }

    fn at_end(&self) -> bool {
        self.inner.peek_token_ref().token == Token::EOF
    }

    fn describe_next(&self) -> String {
        describe(&self.inner.peek_token_ref().token)
    }

    fn expect_end(&mut self) -> Result<(), SqlError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(SqlError::at(
                format!(
                    "unexpected {} at the end of the statement",
                    self.describe_next()
                ),
                self.location(),
            ))
        }
    }

    fn word(&mut self) -> Option<String> {
        match &self.inner.peek_token_ref().token {
            Token::Word(w) if w.quote_style.is_none() => {
                let v = w.value.to_ascii_uppercase();
                self.inner.next_token();
                Some(v)
            }
            _ => None,
        }
    }

    fn word_is(&mut self, expected: &str) -> bool {
        match &self.inner.peek_token_ref().token {
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(expected) => {
                self.inner.next_token();
                true
            }
            _ => false,
        }
    }

    fn expect_word(&mut self, expected: &str, what: &str) -> Result<(), SqlError> {
        if self.word_is(expected) {
            Ok(())
        } else {
            Err(SqlError::at(
                format!("expected {what}, found {}", self.describe_next()),
                self.location(),
            ))
        }
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), SqlError> {
        if self.inner.consume_token(token) {
            Ok(())
        } else {
            Err(SqlError::at(
                format!("expected {what}, found {}", self.describe_next()),
                self.location(),
            ))
        }
    }

    fn name(&mut self, what: &str) -> Result<Name, SqlError> {
        let at = self.location();
        match &self.inner.peek_token_ref().token {
            Token::Word(w) => {
                let value = if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_lowercase()
                };
                self.inner.next_token();
                if value.is_empty() {
                    return Err(SqlError::at(
                        format!("expected {what}, found an empty name"),
                        at,
                    ));
                }
                Ok(Name { value, at })
            }
            _ => Err(SqlError::at(
                format!("expected {what}, found {}", self.describe_next()),
                at,
            )),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, SqlError> {
        match &self.inner.peek_token_ref().token {
            Token::SingleQuotedString(s) => {
                let s = s.clone();
                self.inner.next_token();
                Ok(s)
            }
            _ => Err(SqlError::at(
                format!(
                    "expected {what} as a quoted string, found {}",
                    self.describe_next()
                ),
                self.location(),
            )),
        }
    }

    /// `( key = value [, ...] )` with values quoted strings, numbers or words.
    /// `'host:port[,host:port]' TOPIC 'topic'`: a Kafka source's or sink's address.
    fn kafka_address(&mut self) -> Result<(String, String), SqlError> {
        let at = self.location();
        let brokers =
            self.string("the brokers, as in 'localhost:9092' or 'host1:9092,host2:9092'")?;
        if brokers.split(',').any(|b| !b.trim().contains(':')) {
            return Err(SqlError::at(
                format!("Kafka brokers '{brokers}' need a port each, as in 'localhost:9092'"),
                at,
            ));
        }
        for broker in brokers.split(',') {
            check_host_port(broker.trim(), "Kafka broker", "localhost:9092")
                .map_err(|m| SqlError::at(m, at))?;
        }
        self.expect_word("TOPIC", "TOPIC 'name' after the Kafka brokers")?;
        let at = self.location();
        let topic = self.string("the topic's name")?;
        if topic.trim().is_empty() {
            return Err(SqlError::at("the topic's name is empty", at));
        }
        Ok((brokers, topic))
    }

    /// `(name TYPE [NOT NULL], ...)`: declared columns, each named once.
    fn columns(&mut self, what: &str) -> Result<Vec<ColumnSpec>, SqlError> {
        self.expect(&Token::LParen, &format!("'(' and {what}"))?;
        let mut columns: Vec<ColumnSpec> = Vec::new();
        loop {
            let at = self.location();
            let def = self
                .inner
                .parse_column_def()
                .map_err(SqlError::from_parser)?;
            let column = column_spec(&def).map_err(|m| SqlError::at(m, at))?;
            if columns.iter().any(|c| c.name == column.name) {
                return Err(SqlError::at(
                    format!("column '{}' is declared twice", column.name),
                    at,
                ));
            }
            columns.push(column);
            if self.inner.consume_token(&Token::RParen) {
                break;
            }
            self.expect(&Token::Comma, "',' or ')' after a column definition")?;
        }
        Ok(columns)
    }

    fn options(&mut self) -> Result<Vec<(String, String)>, SqlError> {
        self.expect(
            &Token::LParen,
            "'(' and options, as in WITH (rate = '1000')",
        )?;
        let mut options: Vec<(String, String)> = Vec::new();
        if self.inner.consume_token(&Token::RParen) {
            return Ok(options);
        }
        loop {
            let mut key = self.name("an option name")?;
            // Dotted names pass properties through: kafka.client.id = 'x'.
            while self.inner.consume_token(&Token::Period) {
                let part = self.name("the rest of a dotted option name")?;
                key.value = format!("{}.{}", key.value, part.value);
            }
            self.expect(&Token::Eq, &format!("'=' after option '{}'", key.value))?;
            let at = self.location();
            let value = match self.inner.next_token().token {
                Token::SingleQuotedString(s) | Token::Number(s, _) => s,
                Token::Word(w) => w.value,
                other => {
                    return Err(SqlError::at(
                        format!(
                            "expected a value for option '{}', found '{other}'",
                            key.value
                        ),
                        at,
                    ))
                }
            };
            if options.iter().any(|(k, _)| *k == key.value) {
                return Err(SqlError::at(
                    format!("option '{}' is given twice", key.value),
                    key.at,
                ));
            }
            options.push((key.value, value));
            if self.inner.consume_token(&Token::RParen) {
                return Ok(options);
            }
            self.expect(&Token::Comma, "',' or ')' in the option list")?;
        }
    }
}

/// Maps a SQL column definition to an Arrow type sources can decode.
fn column_spec(def: &ast::ColumnDef) -> Result<ColumnSpec, String> {
    use ast::DataType as S;
    let name = if def.name.quote_style.is_some() {
        def.name.value.clone()
    } else {
        def.name.value.to_lowercase()
    };
    let data_type = match &def.data_type {
        S::Text
        | S::String(_)
        | S::Varchar(_)
        | S::CharVarying(_)
        | S::CharacterVarying(_)
        | S::Char(_)
        | S::Character(_) => DataType::Utf8,
        S::BigInt(_) | S::Int8(_) | S::Int64 => DataType::Int64,
        S::Int(_) | S::Integer(_) | S::Int4(_) | S::Int32 => DataType::Int32,
        S::SmallInt(_) | S::Int2(_) | S::Int16 => DataType::Int16,
        S::Double(_) | S::DoublePrecision | S::Float8 | S::Float64 | S::Float(_) => DataType::Float64,
        S::Real | S::Float4 | S::Float32 => DataType::Float32,
        S::Boolean | S::Bool => DataType::Boolean,
        S::Date => DataType::Date32,
        S::Timestamp(None, ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone) => {
            DataType::Timestamp(TimeUnit::Nanosecond, None)
        }
        other => {
            return Err(format!(
                "column '{name}' has type {other}, which sources do not support; use TEXT, SMALLINT, INT, BIGINT, REAL, DOUBLE, BOOLEAN, DATE or TIMESTAMP"
            ))
        }
    };
    let mut nullable = true;
    for option in &def.options {
        match &option.option {
            ast::ColumnOption::NotNull => nullable = false,
            ast::ColumnOption::Null => nullable = true,
            other => return Err(format!("column option '{other}' is not supported on source columns; only NULL and NOT NULL")),
        }
    }
    Ok(ColumnSpec {
        name,
        data_type,
        nullable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut all = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert_eq!(all.len(), 1);
        all.remove(0).statement
    }

    fn err(sql: &str) -> (String, Option<u64>, Option<u64>) {
        let (_, e) = parse(sql).expect_err(sql);
        (e.message, e.line, e.column)
    }

    fn secs(s: i64) -> Interval {
        Interval::from_millis(s * 1000).unwrap()
    }

    #[test]
    fn create_source_forms() {
        let Statement::CreateSource(s) =
            one("CREATE SOURCE Lines (line TEXT) FROM TCP 'localhost:9999'")
        else {
            panic!()
        };
        assert_eq!(s.name.value, "lines");
        assert_eq!(
            s.from,
            SourceFrom::Tcp {
                addr: "localhost:9999".into()
            }
        );
        assert_eq!(s.format, Format::Lines);
        assert_eq!(
            s.columns,
            vec![ColumnSpec {
                name: "line".into(),
                data_type: DataType::Utf8,
                nullable: true
            }]
        );

        let Statement::CreateSource(s) = one(
            "create source sales (ts TIMESTAMP, store VARCHAR NOT NULL, qty BIGINT, p DOUBLE) from http format csv",
        ) else {
            panic!()
        };
        assert_eq!(s.from, SourceFrom::Http);
        assert_eq!(s.format, Format::Csv);
        assert_eq!(s.columns.len(), 4);
        assert!(!s.columns[1].nullable);
        assert_eq!(
            s.columns[0].data_type,
            DataType::Timestamp(TimeUnit::Nanosecond, None)
        );

        let Statement::CreateSource(s) =
            one("CREATE SOURCE demo (line TEXT) FROM GENERATOR WITH (rate = '1000', seed = 7) FORMAT LINES")
        else {
            panic!()
        };
        assert_eq!(
            s.options,
            vec![("rate".into(), "1000".into()), ("seed".into(), "7".into())]
        );
    }

    #[test]
    fn create_source_errors_point_at_the_problem() {
        assert_eq!(
            err("CREATE SOURCE s (line TEXT) FROM FTP 'x'"),
            (
                "unknown source kind 'FTP'; use TCP, HTTP, GENERATOR, KAFKA or DIRECTORY".into(),
                Some(1),
                Some(34)
            )
        );
        assert_eq!(
            err("CREATE SOURCE s (line TEXT)\nFROM TCP 'localhost'"),
            (
                "TCP address 'localhost' needs a port, as in 'localhost:9999'".into(),
                Some(2),
                Some(10)
            )
        );
        assert_eq!(
            err("CREATE SOURCE s (a TEXT, a INT) FROM HTTP").0,
            "column 'a' is declared twice"
        );
        assert!(err("CREATE SOURCE s (a BLOB) FROM HTTP")
            .0
            .contains("which sources do not support"));
        assert_eq!(
            err("CREATE SOURCE s (a TEXT) FROM HTTP FORMAT XML"),
            (
                "expected a format: LINES, CSV, JSON or PARQUET".into(),
                Some(1),
                Some(43)
            )
        );
        assert_eq!(
            err("CREATE SOURCE s (a TEXT) FROM HTTP WITH (x = 1, x = 2)").0,
            "option 'x' is given twice"
        );
        assert_eq!(
            err("CREATE SOURCE s (a TEXT) FROM HTTP FORMAT CSV FORMAT JSON").0,
            "FORMAT is given twice"
        );
    }

    #[test]
    fn queries_streams_and_bare_selects() {
        let Statement::CreateQuery { name, options, body } =
            one("CREATE QUERY wc WITH (parallelism = 2) AS SELECT word, count(*) FROM words GROUP BY word")
        else {
            panic!()
        };
        assert_eq!(name.unwrap().value, "wc");
        assert_eq!(options, vec![("parallelism".into(), "2".into())]);
        assert_eq!(body.sql, "SELECT word, count(*) FROM words GROUP BY word");
        assert!(body.window.is_none());

        let Statement::CreateStream { name, body } = one(
            "CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM lines",
        ) else {
            panic!()
        };
        assert_eq!(name.value, "words");
        assert!(body.sql.starts_with("SELECT unnest"));

        assert!(matches!(
            one("SELECT 1"),
            Statement::CreateQuery { name: None, .. }
        ));
        assert!(matches!(
            one("(SELECT 1)"),
            Statement::CreateQuery { name: None, .. }
        ));
    }

    #[test]
    fn several_statements_per_request() {
        let all = parse("CREATE SOURCE s (line TEXT) FROM HTTP;\n\n SELECT * FROM s; -- done\n;")
            .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].sql, "SELECT * FROM s");
        assert_eq!(all[1].at, Location::of(3, 2));
        assert_eq!(
            parse("  ; -- nothing").unwrap_err().1.message,
            "no SQL statement found in the request"
        );
        assert_eq!(parse("SELECT 1; SELECT 2; SELECT FROM").unwrap_err().0, 3);
        assert_eq!(parse("SELECT 1; SELECT 'open").unwrap_err().0, 2);
    }

    #[test]
    fn window_clause_in_either_place() {
        let Statement::CreateQuery { body, .. } =
            one("SELECT w, count(*) AS n FROM s GROUP BY w WINDOW SLIDING 60s EVERY 5s ORDER BY n DESC LIMIT 3")
        else {
            panic!()
        };
        assert_eq!(
            body.window.unwrap().window,
            Window::Sliding {
                length: secs(60),
                slide: secs(5)
            }
        );
        assert!(body.query.order_by.is_some());
        assert!(body.query.limit_clause.is_some());

        let Statement::CreateQuery { body, .. } =
            one("SELECT w FROM s ORDER BY w LIMIT 3 WINDOW TUMBLING 1 minute")
        else {
            panic!()
        };
        assert_eq!(
            body.window.unwrap().window,
            Window::Tumbling { length: secs(60) }
        );

        let Statement::CreateQuery { body, .. } =
            one("SELECT k, sum(v) FROM s GROUP BY k WINDOW CUMULATIVE TTL 1h EMIT UPDATES")
        else {
            panic!()
        };
        assert_eq!(
            body.window.unwrap().window,
            Window::Cumulative {
                ttl: Some(secs(3600)),
                emit: Emit::Updates
            }
        );

        let Statement::CreateQuery { body, .. } =
            one("SELECT 1 WINDOW SLIDING 500ms EVERY 500 milliseconds")
        else {
            panic!()
        };
        let half = Interval::from_millis(500).unwrap();
        assert_eq!(
            body.window.unwrap().window,
            Window::Sliding {
                length: half,
                slide: half
            }
        );
    }

    #[test]
    fn named_sql_windows_are_left_to_sql() {
        let Statement::CreateQuery { body, .. } =
            one("SELECT sum(v) OVER w FROM s WINDOW w AS (ORDER BY v)")
        else {
            panic!()
        };
        assert!(body.window.is_none());
    }

    #[test]
    fn window_errors() {
        assert_eq!(
            err("SELECT 1 WINDOW SLIDING 60s 5s"),
            ("expected EVERY and the slide after the window length, as in WINDOW SLIDING 60s EVERY 5s".into(), Some(1), Some(29))
        );
        assert_eq!(err("SELECT 1 WINDOW TUMBLING 5 parsecs").0, "unknown duration unit 'parsecs': use ms, s, m, h or d (or milliseconds, seconds, minutes, hours, days)");
        assert_eq!(
            err("SELECT 1 WINDOW TUMBLING 0s").0,
            "a duration must be positive, got 0 ms"
        );
        assert_eq!(
            err("SELECT 1 WINDOW TUMBLING 5").0,
            "duration 5 needs a unit: ms, s, m, h or d, as in 5s"
        );
        assert_eq!(
            err("SELECT 1 WINDOW CUMULATIVE EMIT ALL").0,
            "expected COMPLETE or UPDATES after EMIT"
        );
        assert!(err("CREATE STREAM x AS SELECT 1 WINDOW TUMBLING 1s")
            .0
            .contains("cannot have a WINDOW"));
    }

    #[test]
    fn create_sink_kinds() {
        let sink = |text: &str| match one(text) {
            Statement::CreateSink(s) => s.into,
            other => panic!("not a sink: {other:?}"),
        };
        assert_eq!(sink("CREATE SINK p FROM q INTO LOG"), SinkInto::Log);
        assert!(matches!(
            sink("CREATE SINK f FROM q INTO FILES 'out/wc' FORMAT CSV"),
            SinkInto::Files { ref prefix, csv: true, .. } if prefix == "out/wc"
        ));
        assert!(matches!(
            sink("CREATE SINK f FROM q INTO PARQUET 'pq'"),
            SinkInto::Parquet { ref dir, .. } if dir == "pq"
        ));
        assert_eq!(
            sink("CREATE SINK w FROM q INTO WEBHOOK 'http://h:1/x'"),
            SinkInto::Webhook {
                url: "http://h:1/x".into()
            }
        );
        assert_eq!(
            err("CREATE SINK s FROM q\nINTO SMOKE"),
            (
                "expected a sink kind: KAFKA, LOG, FILES, PARQUET, WEBHOOK or POSTGRES".into(),
                Some(2),
                Some(6)
            )
        );
        assert_eq!(
            err("CREATE SINK s FROM q INTO FILES 'x' FORMAT XML").0,
            "a file sink writes FORMAT JSON or CSV"
        );
    }

    #[test]
    fn dotted_option_names_pass_through() {
        let Statement::CreateSource(s) = one(
            "CREATE SOURCE k (v TEXT) FROM KAFKA 'b:9092' TOPIC 't' WITH (kafka.client.id = 'me', start = 'earliest')",
        ) else {
            panic!("not a source")
        };
        assert_eq!(
            s.options,
            vec![
                ("kafka.client.id".to_string(), "me".to_string()),
                ("start".to_string(), "earliest".to_string())
            ]
        );
        assert_eq!(
            s.from,
            SourceFrom::Kafka {
                brokers: "b:9092".into(),
                topic: "t".into()
            }
        );
    }

    #[test]
    fn drop_show_explain() {
        assert_eq!(
            one("DROP QUERY IF EXISTS Wc"),
            Statement::Drop {
                kind: ObjectKind::Query,
                name: Name {
                    value: "wc".into(),
                    at: Location::of(1, 22)
                },
                if_exists: true
            }
        );
        assert_eq!(one("SHOW sources"), Statement::Show(ObjectKind::Source));
        assert!(matches!(one("EXPLAIN SELECT 1"), Statement::Explain(_)));
        assert_eq!(one("SHOW TABLES"), Statement::Show(ObjectKind::Table));
        assert_eq!(
            err("SHOW VIEWS").0,
            "expected SOURCES, STREAMS, QUERIES, TABLES or SINKS after SHOW"
        );
        assert_eq!(
            err("DROP QUERY a b").0,
            "unexpected 'b' at the end of the statement"
        );
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let (message, line, column) = err("SELECT a,\n  FROM s WHERE");
        assert!(
            message.starts_with("Expected"),
            "{message} {line:?} {column:?}"
        );
        assert_eq!((line, column), (Some(2), Some(15)), "{message}");
        assert_eq!(err("SELECT (a FROM s").2, Some(11));
        let (message, line, _) = err("SELECT 'unterminated");
        assert!(message.contains("Unterminated string"), "{message}");
        assert_eq!(line, Some(1));
        assert!(err("INSERT INTO s VALUES (1)")
            .0
            .starts_with("unsupported statement 'INSERT'"));
        assert!(err("CREATE INDEX i ON t (a)")
            .0
            .starts_with("CREATE INDEX is not supported"));
        assert_eq!(
            err("CREATE TABLE t (a INT)").0,
            "expected FROM FILE 'path', found end of statement"
        );
        assert_eq!(
            err("SELECT 1 2").0,
            "unexpected '2' after the end of the query"
        );
    }
}
