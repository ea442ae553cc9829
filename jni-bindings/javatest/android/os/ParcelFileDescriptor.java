package android.os;

/** Test stand-in for Android's {@code ParcelFileDescriptor}: what the README's example uses. */
public class ParcelFileDescriptor {
    /** {@code ParcelFileDescriptor.detachFd()}: the raw fd, now the caller's to close. */
    public int detachFd() {
        throw new UnsupportedOperationException("stand-in");
    }
}
