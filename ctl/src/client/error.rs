//! tkctl's errors, each printed in kubectl's words (kubectl exits 1 on every error; the
//! remote command's own code is an `Ok` exit code, not an error).

use std::fmt;

use tinykube_machinery::kinds::Kind;

pub type Res<T> = Result<T, Error>;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The server answered with a failure Status: `Error from server (Reason): message`.
    Server { reason: String, message: String },
    /// The server could not be reached at all.
    Refused { host: String },
    /// The connection failed some other way (TLS, DNS, a reset).
    Unreachable(String),
    /// Everything found on this side (flags, arguments, files), already in kubectl's words:
    /// usually `error: …`, printed as it is.
    Client(String),
}

impl Error {
    /// What kubectl prints for an object of `kind` that is not there.
    pub fn not_found(kind: &Kind, name: &str) -> Error {
        Error::Server {
            reason: "NotFound".into(),
            message: format!("{} \"{name}\" not found", kind.qualified()),
        }
    }

    /// The error from the server's answer to a request, or from not getting one.
    pub fn from_kube(server: &str, e: kube::Error) -> Error {
        match e {
            kube::Error::Api(s) => Error::Server {
                reason: s.reason,
                message: s.message,
            },
            other => {
                if refused(&other) {
                    let host = server.trim_start_matches("https://").trim_end_matches('/');
                    Error::Refused { host: host.into() }
                } else {
                    Error::Unreachable(other.to_string())
                }
            }
        }
    }

    /// The Status reason of a server error (`NotFound`, `Forbidden`, …).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Error::Server { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.reason() == Some("NotFound")
    }

    pub fn is_forbidden(&self) -> bool {
        self.reason() == Some("Forbidden")
    }

    /// A NotFound about object `name` of `kind` said with its qualified type, as kubectl
    /// says it (`deployments.apps "web" not found`); other errors unchanged.
    pub fn about(self, kind: &Kind, name: &str) -> Error {
        if self.is_not_found() {
            Error::not_found(kind, name)
        } else {
            self
        }
    }

    /// A server error about the object read from `source`: `Error from server (Reason):
    /// error when creating "app.yaml": …`; other errors unchanged.
    pub fn when(self, doing: &str, source: &str) -> Error {
        self.context(&format!("error when {doing} \"{source}\": "))
    }

    /// A server error with `before` put before its message, as kubectl wraps the server's
    /// errors in what it was doing; other errors unchanged.
    pub fn context(self, before: &str) -> Error {
        match self {
            Error::Server { reason, message } => Error::Server {
                reason,
                message: format!("{before}{message}"),
            },
            other => other,
        }
    }

    /// The error as Go's error string, without kubectl's `Error from server (…): ` or
    /// `error: ` (what kubectl shows inside other text).
    pub fn bare(&self) -> String {
        match self {
            Error::Server { message, .. } => message.clone(),
            Error::Client(m) => m.strip_prefix("error: ").unwrap_or(m).to_string(),
            other => other.to_string(),
        }
    }
}

/// Whether the connection was refused: an `io::Error` of that kind somewhere in the chain.
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Server { reason, message } => {
                write!(f, "Error from server ({reason}): {message}")
            }
            Error::Refused { host } => write!(
                f,
                "The connection to the server {host} was refused - did you specify the right host or port?"
            ),
            Error::Unreachable(e) => write!(f, "Unable to connect to the server: {e}"),
            Error::Client(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(m: String) -> Error {
        Error::Client(m)
    }
}

impl From<&str> for Error {
    fn from(m: &str) -> Error {
        Error::Client(m.to_string())
    }
}

/// Prints the errors as kubectl does: one alone as it is, several one per line without the
/// `error: ` of the client's own errors. The exit code: 1 when there was any.
pub fn print_all(errors: &[Error]) -> u8 {
    match errors {
        [] => 0,
        [one] => {
            eprintln!("{one}");
            1
        }
        many => {
            for e in many {
                match e {
                    Error::Client(m) => eprintln!("{}", m.strip_prefix("error: ").unwrap_or(m)),
                    other => eprintln!("{other}"),
                }
            }
            1
        }
    }
}

/// kubectl's aggregate of errors as one: one as it is (`error: ` added to a bare message),
/// several one per line.
pub fn aggregate(errors: Vec<Error>) -> Res<u8> {
    match errors.len() {
        0 => Ok(0),
        1 => {
            let e = errors.into_iter().next().expect("one");
            match e {
                Error::Client(m) if !m.starts_with("error: ") => {
                    Err(Error::Client(format!("error: {m}")))
                }
                other => Err(other),
            }
        }
        _ => Err(Error::Client(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_wording() {
        let pods = tinykube_machinery::kinds::lookup("pods").unwrap();
        let deploy = tinykube_machinery::kinds::lookup("deploy").unwrap();
        assert_eq!(
            Error::not_found(pods, "x").to_string(),
            "Error from server (NotFound): pods \"x\" not found"
        );
        let server = Error::Server {
            reason: "NotFound".into(),
            message: "deployments.apps \"web\" not found".into(),
        };
        assert!(server.is_not_found() && !server.is_forbidden());
        assert_eq!(
            server.clone().about(deploy, "web").to_string(),
            "Error from server (NotFound): deployments.apps \"web\" not found"
        );
        assert_eq!(
            Error::Server {
                reason: "AlreadyExists".into(),
                message: "pods \"a\" already exists".into()
            }
            .when("creating", "app.yaml")
            .to_string(),
            "Error from server (AlreadyExists): error when creating \"app.yaml\": pods \"a\" already exists"
        );
        let own = Error::from("error: the path \"x\" does not exist");
        assert_eq!(own.clone().when("creating", "d.yaml"), own);
        assert_eq!(server.bare(), "deployments.apps \"web\" not found");
        assert_eq!(Error::from("error: bad flag").bare(), "bad flag");
        assert_eq!(
            Error::Refused { host: "127.0.0.1:6443".into() }.to_string(),
            "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?"
        );
    }

    #[test]
    fn aggregates_like_kubectl() {
        assert_eq!(aggregate(vec![]), Ok(0));
        assert_eq!(
            aggregate(vec![Error::from("no pod template")]),
            Err(Error::from("error: no pod template"))
        );
        assert_eq!(
            aggregate(vec![Error::from("error: a"), Error::from("error: b")]),
            Err(Error::from("error: a\nerror: b"))
        );
    }

    #[test]
    fn refusal_is_found_in_the_source_chain() {
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl fmt::Display for Wrap {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(refused(&e));
        let other = Wrap(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(!refused(&other));
    }
}
