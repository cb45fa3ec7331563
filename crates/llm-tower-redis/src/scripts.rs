//! The Lua scripts, how they are invoked, and how their replies are read.
//!
//! Each script starts with a `-- llm-tower {name} v{version}` line, so its SHA1 (what
//! `EVALSHA` names) changes with its version, and the keys it touches carry the same
//! version ([`crate::keys`]). Invocation is `EVALSHA`; on `NOSCRIPT` (a restarted or
//! flushed server) the `redis` crate loads the script with `SCRIPT LOAD` and retries.

use std::sync::LazyLock;

use llm_tower_core::Error;
use redis::aio::ConnectionLike;
use redis::{RedisResult, Script, Value};

/// One versioned script.
pub(crate) struct LuaScript {
    /// Its name (the first line says `-- llm-tower {name} v{version}`).
    pub(crate) name: &'static str,
    /// Its version (also the version in the keys of its family).
    pub(crate) version: u32,
    /// The code and its SHA1.
    pub(crate) script: Script,
}

impl LuaScript {
    fn new(name: &'static str, version: u32, code: &str) -> Self {
        LuaScript {
            name,
            version,
            script: Script::new(code),
        }
    }
}

/// The version of the sliding-window script and its keys.
pub(crate) const SLIDING_WINDOW_VERSION: u32 = 1;
/// The version of the leaky-bucket script and its keys.
pub(crate) const LEAKY_BUCKET_VERSION: u32 = 2;
/// The version of the budget scripts and their keys.
pub(crate) const BUDGET_VERSION: u32 = 1;
pub(crate) const ADAPTIVE_VERSION: u32 = 1;

const SLIDING_WINDOW_CODE: &str = include_str!("lua/sliding_window.lua");
const LEAKY_BUCKET_CODE: &str = include_str!("lua/leaky_bucket.lua");
const ADAPTIVE_BLOCK_CODE: &str = include_str!("lua/adaptive_block.lua");
const ADAPTIVE_BLOCKED_CODE: &str = include_str!("lua/adaptive_blocked.lua");
const BUDGET_RESERVE_CODE: &str = concat!(
    "-- llm-tower budget_reserve v1\n",
    include_str!("lua/budget_common.lua"),
    include_str!("lua/budget_reserve.lua")
);
const BUDGET_SETTLE_CODE: &str = concat!(
    "-- llm-tower budget_settle v1\n",
    include_str!("lua/budget_common.lua"),
    include_str!("lua/budget_settle.lua")
);
const BUDGET_USAGE_CODE: &str = concat!(
    "-- llm-tower budget_usage v1\n",
    include_str!("lua/budget_common.lua"),
    include_str!("lua/budget_usage.lua")
);

/// The sliding-window decision.
pub(crate) static SLIDING_WINDOW: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "sliding_window",
        SLIDING_WINDOW_VERSION,
        SLIDING_WINDOW_CODE,
    )
});
/// The leaky-bucket (GCRA) decision.
pub(crate) static LEAKY_BUCKET: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("leaky_bucket", LEAKY_BUCKET_VERSION, LEAKY_BUCKET_CODE));
/// Budget: hold an amount.
pub(crate) static ADAPTIVE_BLOCK: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("adaptive_block", ADAPTIVE_VERSION, ADAPTIVE_BLOCK_CODE));
pub(crate) static ADAPTIVE_BLOCKED: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("adaptive_blocked", ADAPTIVE_VERSION, ADAPTIVE_BLOCKED_CODE));
pub(crate) static BUDGET_RESERVE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("budget_reserve", BUDGET_VERSION, BUDGET_RESERVE_CODE));
/// Budget: release a hold and add the actual amount.
pub(crate) static BUDGET_SETTLE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("budget_settle", BUDGET_VERSION, BUDGET_SETTLE_CODE));
/// Budget: read spent and held.
pub(crate) static BUDGET_USAGE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("budget_usage", BUDGET_VERSION, BUDGET_USAGE_CODE));

/// A script with its keys and arguments, ready to send.
pub(crate) struct ScriptCall {
    pub(crate) script: &'static LuaScript,
    pub(crate) keys: Vec<String>,
    pub(crate) args: Vec<String>,
}

impl ScriptCall {
    /// `EVALSHA sha numkeys keys... args...`, with `NOSCRIPT` handled by loading the script.
    pub(crate) async fn invoke<C: ConnectionLike>(&self, conn: &mut C) -> RedisResult<Value> {
        let mut inv = self.script.script.prepare_invoke();
        for k in &self.keys {
            inv.key(k.as_str());
        }
        for a in &self.args {
            inv.arg(a.as_str());
        }
        inv.invoke_async(conn).await
    }

    /// `name vN`, for messages.
    pub(crate) fn label(&self) -> String {
        format!("{} v{}", self.script.name, self.script.version)
    }
}

fn unexpected(call: &str, what: &str, got: &Value) -> Error {
    Error::store(format!(
        "unexpected reply from the redis {call} script: expected {what}, got {}",
        describe(got)
    ))
}

/// A short description of a reply's type (never its contents, which may be long).
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) => "a string",
        Value::Array(_) => "an array",
        Value::SimpleString(_) => "a status string",
        Value::Okay => "OK",
        Value::Map(_) => "a map",
        Value::Set(_) => "a set",
        Value::Double(_) => "a double",
        Value::Boolean(_) => "a boolean",
        Value::ServerError(_) => "an error",
        _ => "another type",
    }
}

/// The elements of an array reply.
pub(crate) fn array(call: &str, v: Value) -> Result<Vec<Value>, Error> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(unexpected(call, "an array", &other)),
    }
}

/// An integer element (an integer reply, or a decimal string).
pub(crate) fn int(call: &str, items: &[Value], i: usize) -> Result<i64, Error> {
    let Some(v) = items.get(i) else {
        return Err(Error::store(format!(
            "unexpected reply from the redis {call} script: {} elements, element {i} missing",
            items.len()
        )));
    };
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| unexpected(call, "a decimal integer", v)),
        Value::SimpleString(s) => s
            .parse::<i64>()
            .map_err(|_| unexpected(call, "a decimal integer", v)),
        other => Err(unexpected(call, "an integer", other)),
    }
}

/// A non-negative integer element.
pub(crate) fn uint(call: &str, items: &[Value], i: usize) -> Result<u64, Error> {
    let n = int(call, items, i)?;
    u64::try_from(n).map_err(|_| {
        Error::store(format!(
            "unexpected reply from the redis {call} script: element {i} is negative ({n})"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_names_its_version_on_the_first_line() {
        for s in [
            &*SLIDING_WINDOW,
            &*LEAKY_BUCKET,
            &*BUDGET_RESERVE,
            &*BUDGET_SETTLE,
            &*BUDGET_USAGE,
            &*ADAPTIVE_BLOCK,
            &*ADAPTIVE_BLOCKED,
        ] {
            let code = match s.name {
                "sliding_window" => SLIDING_WINDOW_CODE,
                "leaky_bucket" => LEAKY_BUCKET_CODE,
                "budget_reserve" => BUDGET_RESERVE_CODE,
                "budget_settle" => BUDGET_SETTLE_CODE,
                "adaptive_block" => ADAPTIVE_BLOCK_CODE,
                "adaptive_blocked" => ADAPTIVE_BLOCKED_CODE,
                _ => BUDGET_USAGE_CODE,
            };
            let header = format!("-- llm-tower {} v{}\n", s.name, s.version);
            assert!(
                code.starts_with(&header),
                "{} does not start with {header:?}",
                s.name
            );
            assert_eq!(s.script.get_hash().len(), 40);
        }
        let hashes: std::collections::HashSet<_> = [
            &*SLIDING_WINDOW,
            &*LEAKY_BUCKET,
            &*BUDGET_RESERVE,
            &*BUDGET_SETTLE,
            &*BUDGET_USAGE,
            &*ADAPTIVE_BLOCK,
            &*ADAPTIVE_BLOCKED,
        ]
        .iter()
        .map(|s| s.script.get_hash().to_owned())
        .collect();
        assert_eq!(hashes.len(), 7);
    }

    #[test]
    fn replies_of_the_wrong_shape_are_store_errors_not_panics() {
        let kind = llm_tower_core::ErrorKind::Store;
        assert_eq!(array("x", Value::Nil).unwrap_err().kind(), kind);
        assert_eq!(array("x", Value::Okay).unwrap_err().kind(), kind);
        let items = vec![
            Value::Int(1),
            Value::BulkString(b"42".to_vec()),
            Value::BulkString(b"4x".to_vec()),
            Value::Nil,
            Value::Int(-3),
            Value::Double(1.5),
        ];
        assert_eq!(int("x", &items, 0).unwrap(), 1);
        assert_eq!(int("x", &items, 1).unwrap(), 42);
        assert_eq!(int("x", &items, 2).unwrap_err().kind(), kind);
        assert_eq!(int("x", &items, 3).unwrap_err().kind(), kind);
        assert_eq!(uint("x", &items, 4).unwrap_err().kind(), kind);
        assert_eq!(int("x", &items, 5).unwrap_err().kind(), kind);
        assert_eq!(int("x", &items, 9).unwrap_err().kind(), kind);
    }
}
