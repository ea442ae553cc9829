package io.tapemu.demo.core;

import io.tapemu.Lease;
import io.tapemu.Route;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * What the VPN interface must look like for a lease: the calls to make on
 * {@code VpnService.Builder}, as plain data so it can be built and compared without the
 * Android SDK.
 */
public final class InterfacePlan {
    /** Session name shown by Android in the VPN notification. */
    public final String session;
    /** Our address. */
    public final InetAddress address;
    /** Its prefix length. */
    public final int prefixLength;
    /** Routes to send into the VPN (subnet, default route, classless routes). */
    public final List<Route> routes;
    /** DNS servers. */
    public final List<InetAddress> dnsServers;
    /** DNS search domains. */
    public final List<String> searchDomains;
    /** Interface MTU. */
    public final int mtu;

    private InterfacePlan(String session, Lease lease) {
        this.session = session;
        this.address = lease.address();
        this.prefixLength = lease.prefixLength();
        List<Route> r = new ArrayList<>();
        for (Route route : lease.routes()) {
            if (!r.contains(route)) {
                r.add(route);
            }
        }
        this.routes = Collections.unmodifiableList(r);
        this.dnsServers = Collections.unmodifiableList(new ArrayList<>(lease.dns()));
        this.searchDomains = Collections.unmodifiableList(new ArrayList<>(lease.searchDomains()));
        this.mtu = lease.mtu();
    }

    /**
     * @param session session name for the VPN
     * @param lease the lease from {@code TapListener.onLeaseAcquired} or {@code onLeaseChanged}
     * @return the interface the lease calls for
     */
    public static InterfacePlan fromLease(String session, Lease lease) {
        return new InterfacePlan(session, Objects.requireNonNull(lease, "lease"));
    }

    /**
     * @param other another plan, or null
     * @return true when both describe the same interface (no rebuild needed)
     */
    public boolean sameInterface(InterfacePlan other) {
        return other != null && address.equals(other.address) && prefixLength == other.prefixLength
                && routes.equals(other.routes) && dnsServers.equals(other.dnsServers)
                && searchDomains.equals(other.searchDomains) && mtu == other.mtu;
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append("address ").append(address.getHostAddress()).append('/').append(prefixLength).append('\n');
        for (Route r : routes) {
            sb.append("route ").append(r).append('\n');
        }
        for (InetAddress d : dnsServers) {
            sb.append("dns ").append(d.getHostAddress()).append('\n');
        }
        for (String s : searchDomains) {
            sb.append("search ").append(s).append('\n');
        }
        return sb.append("mtu ").append(mtu).toString();
    }
}
