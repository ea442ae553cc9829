package io.tapemu;

import android.os.ParcelFileDescriptor;
import java.io.IOException;
import java.util.Objects;

/**
 * {@link ParcelFileDescriptor} forms of the emulator's fd methods (Android only: this class is
 * in the library module, not in the desktop API).
 *
 * <p>The rule is Android's own: a {@code ParcelFileDescriptor} owns its fd, and
 * {@link ParcelFileDescriptor#detachFd()} hands the ownership over. Passing
 * {@code pfd.getFd()} to {@link TapEmulator#attachTun(int)} instead would let the emulator
 * close an fd the {@code ParcelFileDescriptor} still owns, which fdsan aborts on from API 30;
 * these methods make that mistake impossible.
 */
public final class AndroidFds {
    private AndroidFds() {}

    /**
     * {@link TapEmulator#attachTun(int)} for the result of {@code VpnService.Builder.establish()}:
     * detaches the fd from {@code tun} and hands it over. Whatever happens, {@code tun} is left
     * detached (closed, as a {@code ParcelFileDescriptor}) and the emulator owns the fd, which
     * it attaches or, on any failure, closes: do not use {@code tun} afterwards.
     *
     * @param tap the emulator
     * @param tun the VPN interface, e.g. from {@code establish()}
     * @throws IOException as {@link TapEmulator#attachTun(int)}
     * @throws IllegalStateException if {@code tun} was closed or detached already (nothing is
     *     attached), or as {@link TapEmulator#attachTun(int)}
     */
    public static void attachTun(@NonNull TapEmulator tap, @NonNull ParcelFileDescriptor tun) throws IOException {
        Objects.requireNonNull(tap, "tap");
        tap.attachTun(Objects.requireNonNull(tun, "tun").detachFd());
    }

    /**
     * {@link TapEmulator#peerFd()} as a {@code ParcelFileDescriptor}, which owns the fd: close it
     * when the engine is done with it, or {@code detachFd()} it to hand it to the engine.
     *
     * @param tap an emulator built with {@link TapConfig.Builder#socketPair()}
     * @return the app's end of the socket pair
     * @throws IllegalStateException as {@link TapEmulator#peerFd()}
     */
    public static @NonNull ParcelFileDescriptor peer(@NonNull TapEmulator tap) {
        return ParcelFileDescriptor.adoptFd(Objects.requireNonNull(tap, "tap").peerFd());
    }
}
