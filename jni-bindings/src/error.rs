//! Errors of the native entry points and how they become Java exceptions.

use std::any::Any;
use std::fmt;

use jni::errors::ErrorPolicy;
use jni::strings::JNIString;
use jni::{jni_str, Env};

/// What went wrong in a native entry point; each kind maps to one Java exception class.
#[derive(Debug)]
pub enum Error {
    /// Bad configuration or argument: `IllegalArgumentException`.
    IllegalArgument(String),
    /// Call in the wrong state (closed, not started, wrong mode): `IllegalStateException`.
    IllegalState(String),
    /// File descriptor or socket trouble: `java.io.IOException`.
    Io(String),
    /// A JNI call failed; if it left a Java exception pending, that one propagates.
    Jni(jni::errors::Error),
}

/// Result of a native entry point.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::IllegalArgument(m) | Error::IllegalState(m) | Error::Io(m) => f.write_str(m),
            Error::Jni(e) => write!(f, "JNI error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<jni::errors::Error> for Error {
    fn from(e: jni::errors::Error) -> Self {
        Error::Jni(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// Error policy of every native entry point: throws the Java exception matching the
/// [`Error`] kind (unless one is already pending), turns a panic into an
/// `IllegalStateException` naming it, and returns the type's default value.
#[derive(Debug, Default)]
pub struct ThrowMapped;

impl<T: Default> ErrorPolicy<T, Error> for ThrowMapped {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut (),
        err: Error,
    ) -> jni::errors::Result<T> {
        if env.exception_check() {
            return Ok(T::default());
        }
        let class = match &err {
            Error::IllegalArgument(_) => jni_str!("java/lang/IllegalArgumentException"),
            Error::IllegalState(_) => jni_str!("java/lang/IllegalStateException"),
            Error::Io(_) => jni_str!("java/io/IOException"),
            Error::Jni(_) => jni_str!("java/lang/RuntimeException"),
        };
        let msg = JNIString::from(err.to_string());
        // throw_new reports Err(JavaException) once thrown: that is the outcome we want.
        let _ = env.throw_new(class, msg);
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut (),
        payload: Box<dyn Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let msg = panic_message(payload.as_ref());
        tracing::error!("tapemu native panic: {msg}");
        if !env.exception_check() {
            let msg = JNIString::from(format!("tapemu internal error (panic): {msg}"));
            let _ = env.throw_new(jni_str!("java/lang/IllegalStateException"), msg);
        }
        Ok(T::default())
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
