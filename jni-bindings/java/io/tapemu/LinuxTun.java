package io.tapemu;

import java.io.IOException;

/**
 * Desktop Linux only: opens a TUN device for a JVM that is not an Android {@code VpnService}
 * (tests, desktop tools). Needs CAP_NET_ADMIN. Configure the interface (address, routes, up)
 * with the usual tools; the returned fd goes to {@link TapEmulator#attachTun(int)}.
 */
public final class LinuxTun {
    static {
        System.loadLibrary("tapemu_jni");
    }

    private LinuxTun() {}

    /**
     * Opens (creating if needed) the TUN interface {@code name}, without packet information
     * header, non-blocking: one IP packet per read and write.
     *
     * @param name interface name, at most 15 bytes
     * @return the fd
     * @throws IOException if the device cannot be opened or the name is refused
     * @throws IllegalArgumentException if the name is empty or too long
     */
    public static int open(@NonNull String name) throws IOException {
        return nativeOpen(name, false);
    }

    /**
     * {@link #open(String)} with segmentation offloads: the TUN carries virtio-net headers
     * ({@code IFF_VNET_HDR}) and TSO4/TSO6/USO, so one read brings up to 64 KiB of a TCP
     * stream, which the emulator splits, and TCP from the link goes in coalesced: the
     * CLI's fast path. Where the kernel refuses the offloads it is a plain TUN, as {@link
     * #open(String)} gives. {@link TapEmulator#attachTun(int)} tells which it got.
     *
     * @param name interface name, at most 15 bytes
     * @return the fd
     * @throws IOException if the device cannot be opened or the name is refused
     * @throws IllegalArgumentException if the name is empty or too long
     */
    public static int openWithOffloads(@NonNull String name) throws IOException {
        return nativeOpen(name, true);
    }

    private static native int nativeOpen(String name, boolean offloads) throws IOException;
}
