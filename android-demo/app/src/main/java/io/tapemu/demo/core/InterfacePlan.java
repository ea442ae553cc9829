package io.tapemu.demo.core;

import io.tapemu.Ipv6Info;
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
    /** IPv6 addresses from SLAAC, each with its prefix length. */
    public final List<Ipv6Info.Address> ipv6Addresses;
    /** Routes to send into the VPN (subnet, default route, classless routes; IPv6 too). */
    public final List<Route> routes;
    /** DNS servers. */
    public final List<InetAddress> dnsServers;
    /** DNS search domains. */
    public final List<String> searchDomains;
    /** Interface MTU. */
    public final int mtu;
    /**
     * {@code Builder.setMetered}: false, so the VPN is metered exactly when the underlying
     * network it follows ({@code setUnderlyingNetworks}) is.
     */
    public final boolean metered = false;

    private InterfacePlan(String session, Lease lease, Ipv6Info ipv6) {
        this.session = session;
        this.address = lease.address();
        this.prefixLength = lease.prefixLength();
        List<Route> r = new ArrayList<>(lease.routes());
        List<InetAddress> dns = new ArrayList<>(lease.dns());
        List<String> search = new ArrayList<>(lease.searchDomains());
        List<Ipv6Info.Address> v6 = new ArrayList<>();
        int m = lease.mtu();
        if (ipv6 != null && !ipv6.addresses().isEmpty()) {
            v6.addAll(ipv6.addresses());
            r.addAll(ipv6.routes());
            dns.addAll(ipv6.dns());
            search.addAll(ipv6.searchDomains());
            if (ipv6.mtu() > 0) {
                m = Math.min(m, ipv6.mtu());
            }
        }
        this.ipv6Addresses = Collections.unmodifiableList(v6);
        this.routes = Collections.unmodifiableList(distinct(r));
        this.dnsServers = Collections.unmodifiableList(distinct(dns));
        this.searchDomains = Collections.unmodifiableList(distinct(search));
        this.mtu = m;
    }

    private static <T> List<T> distinct(List<T> in) {
        List<T> out = new ArrayList<>();
        for (T t : in) {
            if (!out.contains(t)) {
                out.add(t);
            }
        }
        return out;
    }

    /**
     * @param session session name for the VPN
     * @param lease the lease from {@code TapListener.onLeaseAcquired} or {@code onLeaseChanged}
     * @return the interface the lease calls for
     */
    public static InterfacePlan fromLease(String session, Lease lease) {
        return fromLease(session, lease, null);
    }

    /**
     * @param session session name for the VPN
     * @param lease the IPv4 lease
     * @param ipv6 the IPv6 state from {@code TapListener.onIpv6Changed}, or null; its
     *     addresses, routes and DNS servers are added when it has a global address
     * @return the interface the lease and the IPv6 state call for
     */
    public static InterfacePlan fromLease(String session, Lease lease, Ipv6Info ipv6) {
        return new InterfacePlan(session, Objects.requireNonNull(lease, "lease"), ipv6);
    }

    /**
     * @param other another plan, or null
     * @return true when both describe the same interface (no rebuild needed)
     */
    public boolean sameInterface(InterfacePlan other) {
        return other != null && address.equals(other.address) && prefixLength == other.prefixLength
                && ipv6Addresses.equals(other.ipv6Addresses) && routes.equals(other.routes) && dnsServers.equals(other.dnsServers)
                && searchDomains.equals(other.searchDomains) && mtu == other.mtu;
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append("address ").append(address.getHostAddress()).append('/').append(prefixLength).append('\n');
        for (Ipv6Info.Address a : ipv6Addresses) {
            sb.append("address ").append(a).append('\n');
        }
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
