package android.util;

/** Test stand-in for Android's {@code Log}: what the README's example uses. */
public final class Log {
    private Log() {}

    /** {@code Log.w(String, String)}. */
    public static int w(String tag, String msg) {
        throw new UnsupportedOperationException("stand-in");
    }

    /** {@code Log.w(String, String, Throwable)}. */
    public static int w(String tag, String msg, Throwable tr) {
        throw new UnsupportedOperationException("stand-in");
    }
}
