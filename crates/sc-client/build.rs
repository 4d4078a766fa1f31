//! Generates the Spark SQL functions of `sc_client::functions` from `src/functions/table.jsonl`.
//!
//! The table (written by `codegen/functions_table.py` from PySpark's own Spark Connect client)
//! describes, per function, its parameters with their kinds and how a call becomes the arguments
//! of one `UnresolvedFunction`. Functions marked `manual` in the table are written by hand in
//! `src/functions/`. The output is `$OUT_DIR/functions_generated.rs`, included by
//! `src/functions/mod.rs`.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

const TABLE: &str = "src/functions/table.jsonl";

fn main() {
    println!("cargo::rerun-if-changed={TABLE}");
    println!("cargo::rerun-if-changed=build.rs");
    let text = match std::fs::read_to_string(TABLE) {
        Ok(t) => t,
        Err(e) => fail(&format!("reading {TABLE}: {e}")),
    };
    let mut out = String::new();
    let mut count = 0usize;
    for (n, line) in text.lines().enumerate() {
        let row: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => fail(&format!("{TABLE}:{}: {e}", n + 1)),
        };
        if row.get("name").is_none() || row.get("manual").is_some() {
            continue;
        }
        match function(&row) {
            Ok(code) => {
                out.push_str(&code);
                count += 1;
            }
            Err(e) => fail(&format!("{TABLE}:{}: {e}", n + 1)),
        }
    }
    let _ = writeln!(
        out,
        "/// How many functions this module generates from the table.\n\
         #[allow(dead_code)]\npub(crate) const GENERATED_COUNT: usize = {count};"
    );
    let dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(e) = std::fs::write(dir.join("functions_generated.rs"), out) {
        fail(&format!("writing the generated functions: {e}"));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("sc-client build script: {msg}");
    std::process::exit(1)
}

fn s<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string field `{key}` in {v}"))
}

/// The Rust type of a parameter of `kind`, required or optional.
fn rust_type(kind: &str, required: bool) -> Result<&'static str, String> {
    Ok(match (kind, required) {
        ("col", true) => "impl IntoColumn",
        ("col", false) => "impl IntoOptionalColumn",
        ("column", true) => "Column",
        ("column", false) => "impl Into<Option<Column>>",
        ("value", true) => "impl IntoExpr",
        ("value", false) => "impl IntoOptionalExpr",
        ("col_or_value", true) => "impl IntoColumnOrLiteral",
        ("col_or_value", false) => "impl IntoOptionalColumnOrLiteral",
        ("int", true) => "i64",
        ("int", false) => "impl Into<Option<i64>>",
        ("float", true) => "f64",
        ("float", false) => "impl Into<Option<f64>>",
        ("str", true) => "&str",
        ("str", false) => "impl Into<Option<&'a str>>",
        ("bool", true) => "bool",
        ("bool", false) => "impl Into<Option<bool>>",
        ("cols", _) => "impl IntoIterator<Item = impl IntoColumn>",
        ("values", _) => "impl IntoIterator<Item = impl IntoExpr>",
        ("strs", _) => "impl IntoIterator<Item = &'a str>",
        (k, _) => return Err(format!("unknown parameter kind `{k}`")),
    })
}

/// The expression converting parameter `p` of `kind` to a column (or columns).
fn convert(p: &str, kind: &str, required: bool) -> Result<String, String> {
    Ok(match (kind, required) {
        ("col", true) => format!("{p}.into_column()"),
        ("col", false) => format!("{p}.into_optional_column()"),
        ("column", true) => p.to_string(),
        ("column", false) => format!("{p}.into()"),
        ("value", true) => format!("{p}.into_expr()"),
        ("value", false) => format!("{p}.into_optional_expr()"),
        ("col_or_value", true) => format!("{p}.into_column_or_literal()"),
        ("col_or_value", false) => format!("{p}.into_optional_column_or_literal()"),
        ("int", true) => format!("int_lit({p})"),
        ("int", false) => format!("{p}.into().map(int_lit)"),
        ("float" | "str" | "bool", true) => format!("lit({p})"),
        ("float" | "str" | "bool", false) => format!("{p}.into().map(lit)"),
        ("cols", _) => format!("{p}.into_iter().map(IntoColumn::into_column).collect()"),
        ("values", _) => format!("{p}.into_iter().map(IntoExpr::into_expr).collect()"),
        ("strs", _) => format!("{p}.into_iter().map(lit).collect()"),
        (k, _) => return Err(format!("unknown parameter kind `{k}`")),
    })
}

/// A constant literal of the table as a Rust expression.
fn constant(c: &Value) -> Result<String, String> {
    let v = c.get("value").cloned().unwrap_or(Value::Null);
    Ok(match s(c, "type")? {
        "integer" => format!("lit({v}i32)"),
        "long" => format!("lit({v}i64)"),
        "short" => format!("lit({v}i16)"),
        "byte" => format!("lit({v}i8)"),
        "double" => format!("lit({}f64)", float(&v)?),
        "float" => format!("lit({}f32)", float(&v)?),
        "boolean" => format!("lit({v})"),
        "string" => format!("lit({v})"),
        "null" => "null()".to_string(),
        "decimal" => format!(
            "lit(crate::column::Decimal {{ value: {}.to_string(), precision: {}, scale: {} }})",
            v,
            c.get("precision").cloned().unwrap_or(Value::Null),
            c.get("scale").cloned().unwrap_or(Value::Null)
        ),
        t => return Err(format!("unknown constant type `{t}`")),
    })
}

fn float(v: &Value) -> Result<String, String> {
    let f = v.as_f64().ok_or_else(|| format!("not a number: {v}"))?;
    let t = format!("{f:?}");
    Ok(if t.contains('.') || t.contains('e') {
        t
    } else {
        format!("{t}.0")
    })
}

fn fill(f: &Value) -> Result<String, String> {
    match f.as_str() {
        Some("drop") => Ok("Fill::Drop".to_string()),
        Some("random_seed") => Ok("Fill::RandomSeed".to_string()),
        Some(other) => Err(format!("unknown fill `{other}`")),
        None => Ok(format!("Fill::Const({})", constant(f)?)),
    }
}

/// Merges a required column parameter followed by a variadic column parameter (taking the
/// adjacent argument slots) into the variadic one.
fn fold_first_column(params: &[Value], slots: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let kind = |p: &Value| p.get("kind").and_then(Value::as_str).map(str::to_string);
    let py = |v: &Value| v.get("py").and_then(Value::as_str).map(str::to_string);
    let param = |v: &Value| v.get("param").and_then(Value::as_str).map(str::to_string);
    for i in 0..params.len().saturating_sub(1) {
        if kind(&params[i]).as_deref() == Some("col")
            && kind(&params[i + 1]).as_deref() == Some("cols")
        {
            let (first, rest) = (py(&params[i]), py(&params[i + 1]));
            let at = slots.iter().position(|s| param(s) == first);
            if let Some(at) = at
                && slots.get(at + 1).map(param) == Some(rest)
            {
                let mut ps = params.to_vec();
                ps.remove(i);
                let mut ss = slots.to_vec();
                ss.remove(at);
                return (ps, ss);
            }
        }
    }
    (params.to_vec(), slots.to_vec())
}

fn function(row: &Value) -> Result<String, String> {
    let name = s(row, "name")?;
    let rust = s(row, "rust")?;
    let spark = s(row, "spark")?;
    let distinct = row
        .get("distinct")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let params = row
        .get("params")
        .and_then(Value::as_array)
        .ok_or("missing params")?;
    let slots = row
        .get("slots")
        .and_then(Value::as_array)
        .ok_or("missing slots")?;

    // PySpark's `(col, *cols)` (at least one column) is one list of columns in Rust.
    let (params, slots) = fold_first_column(params, slots);
    let (params, slots) = (&params, &slots);

    let mut sig = Vec::new();
    let mut shape = Vec::new();
    let mut notes = Vec::new();
    let mut needs_lifetime = false;
    for p in params {
        let kind = s(p, "kind")?;
        let required = p.get("required").and_then(Value::as_bool).unwrap_or(true);
        let r = s(p, "rust")?;
        let ty = rust_type(kind, required)?;
        needs_lifetime |= ty.contains("'a");
        sig.push(format!("{r}: {ty}"));
        let optional = !required && !matches!(kind, "cols" | "values" | "strs");
        shape.push(if optional {
            format!("[{r}]")
        } else if matches!(kind, "cols" | "values" | "strs") {
            format!("{r}...")
        } else {
            r.to_string()
        });
        if optional {
            let what = match p.get("absent_trailing").and_then(Value::as_str) {
                Some("drop") => "left out".to_string(),
                Some("random_seed") => "a random seed".to_string(),
                _ => match p.get("absent_trailing") {
                    Some(c) => format!("`{}`", c.get("value").cloned().unwrap_or(Value::Null)),
                    None => "left out".to_string(),
                },
            };
            notes.push(format!("`{r}` is optional (`None`: {what})"));
        }
    }

    let mut body = Vec::new();
    for slot in slots {
        if let Some(c) = slot.get("const") {
            body.push(format!("Slot::One({})", constant(c)?));
            continue;
        }
        let py = s(slot, "param")?;
        let p = params
            .iter()
            .find(|p| p.get("py").and_then(Value::as_str) == Some(py))
            .ok_or_else(|| format!("slot names unknown parameter `{py}`"))?;
        let kind = s(p, "kind")?;
        let required = p.get("required").and_then(Value::as_bool).unwrap_or(true);
        let r = s(p, "rust")?;
        let conv = convert(r, kind, required)?;
        body.push(match kind {
            "cols" | "values" | "strs" => format!("Slot::Many({conv})"),
            _ if required => format!("Slot::One({conv})"),
            _ => format!(
                "Slot::Optional {{ value: {conv}, trailing: {}, middle: {} }}",
                fill(p.get("absent_trailing").unwrap_or(&Value::Null))?,
                fill(p.get("absent_middle").unwrap_or(&Value::Null))?
            ),
        });
    }

    let since = row
        .get("since")
        .and_then(Value::as_str)
        .map(|v| format!(" Since Spark {v}."))
        .unwrap_or_default();
    let deprecated = row
        .get("deprecated")
        .and_then(Value::as_str)
        .map(|v| format!(" Deprecated in Spark {v}."))
        .unwrap_or_default();
    let mut doc = format!(
        "`{rust}({})`: calls the Spark SQL function `{spark}`{}, as PySpark's `functions.{name}` does.{since}{deprecated}",
        shape.join(", "),
        if distinct { " on distinct values" } else { "" },
    );
    if !notes.is_empty() {
        doc.push_str(&format!("\n///\n/// {}.", notes.join("; ")));
    }
    let generics = if needs_lifetime { "<'a>" } else { "" };
    Ok(format!(
        "/// {doc}\npub fn {rust}{generics}({}) -> Column {{\n    invoke({spark:?}, {distinct}, vec![{}])\n}}\n\n",
        sig.join(", "),
        body.join(", ")
    ))
}
