//! A scripted connection for unit tests: records every command, answers from a list.

use std::collections::VecDeque;

use redis::aio::ConnectionLike;
use redis::{Arg, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// Answers commands from a list and records them as strings.
pub(crate) struct MockConnection {
    replies: VecDeque<RedisResult<Value>>,
    sent: Vec<Vec<String>>,
}

impl MockConnection {
    pub(crate) fn new(replies: Vec<RedisResult<Value>>) -> Self {
        MockConnection {
            replies: replies.into(),
            sent: Vec::new(),
        }
    }

    /// A server error reply, parsed from its wire form (e.g. `-NOSCRIPT ...\r\n`).
    pub(crate) fn error(wire: &str) -> RedisResult<Value> {
        match redis::parse_redis_value(wire.as_bytes()) {
            Ok(Value::ServerError(e)) => Err(RedisError::from(e)),
            other => panic!("not an error reply: {other:?}"),
        }
    }

    /// The commands sent so far.
    pub(crate) fn sent(&self) -> &[Vec<String>] {
        &self.sent
    }
}

impl ConnectionLike for MockConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let args = cmd
            .args_iter()
            .map(|a| match a {
                Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => "<cursor>".to_owned(),
            })
            .collect();
        self.sent.push(args);
        let reply = self.replies.pop_front().unwrap_or(Ok(Value::Nil));
        Box::pin(async move { reply })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        _: &'a Pipeline,
        _: usize,
        _: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
