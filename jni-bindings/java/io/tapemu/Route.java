package io.tapemu;

import java.net.InetAddress;

/** An IPv4 route from a lease: {@code destination/prefixLength} via {@code gateway}. */
public final class Route {
    private final InetAddress destination;
    private final int prefixLength;
    private final InetAddress gateway;

    /**
     * @param destination network address
     * @param prefixLength prefix length, 0–32
     * @param gateway next hop, or {@code null} when on-link
     */
    public Route(@NonNull InetAddress destination, int prefixLength, @Nullable InetAddress gateway) {
        this.destination = destination;
        this.prefixLength = prefixLength;
        this.gateway = gateway;
    }

    /** @return the network address, for {@code VpnService.Builder.addRoute} */
    public @NonNull InetAddress destination() {
        return destination;
    }

    /** @return the prefix length */
    public int prefixLength() {
        return prefixLength;
    }

    /** @return the next hop, or {@code null} for an on-link route */
    public @Nullable InetAddress gateway() {
        return gateway;
    }

    @Override
    public boolean equals(@Nullable Object o) {
        if (!(o instanceof Route)) {
            return false;
        }
        Route r = (Route) o;
        return destination.equals(r.destination) && prefixLength == r.prefixLength
                && java.util.Objects.equals(gateway, r.gateway);
    }

    @Override
    public int hashCode() {
        return java.util.Objects.hash(destination, prefixLength, gateway);
    }

    @Override
    public @NonNull String toString() {
        return destination.getHostAddress() + "/" + prefixLength
                + (gateway == null ? "" : " via " + gateway.getHostAddress());
    }
}
