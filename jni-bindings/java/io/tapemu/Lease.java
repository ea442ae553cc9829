package io.tapemu;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * An IPv4 configuration from DHCP (or, with a static address, from the configuration): all
 * that {@code VpnService.Builder} needs to build the interface. Immutable.
 *
 * <pre>{@code
 * builder.addAddress(lease.address(), lease.prefixLength());
 * for (Route r : lease.routes()) builder.addRoute(r.destination(), r.prefixLength());
 * for (InetAddress d : lease.dns()) builder.addDnsServer(d);
 * for (String s : lease.searchDomains()) builder.addSearchDomain(s);
 * builder.setMtu(lease.mtu());
 * }</pre>
 */
public final class Lease {
    private InetAddress address;
    private int prefixLength;
    private InetAddress gateway;
    private final List<Route> routes = new ArrayList<>();
    private final List<InetAddress> dns = new ArrayList<>();
    private String domain;
    private final List<String> search = new ArrayList<>();
    private int mtu;
    private InetAddress broadcast;
    private long leaseTimeSeconds = -1;
    private long renewSeconds = -1;
    private long rebindSeconds = -1;
    private InetAddress server;

    private Lease() {}

    /** @return our address */
    public InetAddress address() {
        return address;
    }

    /** @return the subnet prefix length */
    public int prefixLength() {
        return prefixLength;
    }

    /** @return the default gateway (DHCP router option), or {@code null} */
    public InetAddress gateway() {
        return gateway;
    }

    /**
     * @return the routes to install: classless static routes (option 121) when the server sent
     *     them, else a default route via the gateway; the on-link subnet is included
     */
    public List<Route> routes() {
        return Collections.unmodifiableList(routes);
    }

    /** @return DNS servers, in the server's order */
    public List<InetAddress> dns() {
        return Collections.unmodifiableList(dns);
    }

    /** @return the domain name (option 15), or {@code null} */
    public String domain() {
        return domain;
    }

    /** @return the DNS search list (option 119, else the domain name), possibly empty */
    public List<String> searchDomains() {
        return Collections.unmodifiableList(search);
    }

    /** @return the interface MTU: the server's option 26 if sent, else the configured link MTU */
    public int mtu() {
        return mtu;
    }

    /** @return the broadcast address, or {@code null} */
    public InetAddress broadcast() {
        return broadcast;
    }

    /** @return the lease time in seconds, or -1 for a static address (no expiry) */
    public long leaseTimeSeconds() {
        return leaseTimeSeconds;
    }

    /** @return T1, seconds until renewal, or -1 */
    public long renewSeconds() {
        return renewSeconds;
    }

    /** @return T2, seconds until rebinding, or -1 */
    public long rebindSeconds() {
        return rebindSeconds;
    }

    /** @return the DHCP server's identifier, or {@code null} for a static address */
    public InetAddress server() {
        return server;
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append(address == null ? "?" : address.getHostAddress()).append('/').append(prefixLength);
        if (gateway != null) {
            sb.append(" gw ").append(gateway.getHostAddress());
        }
        sb.append(" routes ").append(routes).append(" dns [");
        for (int i = 0; i < dns.size(); i++) {
            sb.append(i == 0 ? "" : ", ").append(dns.get(i).getHostAddress());
        }
        sb.append("] mtu ").append(mtu);
        if (domain != null) {
            sb.append(" domain ").append(domain);
        }
        if (!search.isEmpty()) {
            sb.append(" search ").append(search);
        }
        if (leaseTimeSeconds >= 0) {
            sb.append(" lease ").append(leaseTimeSeconds).append('s');
        }
        return sb.toString();
    }

    /**
     * Parses the wire form the native side sends: one {@code key=value} per line.
     *
     * @param text the encoded lease
     * @return the lease
     * @throws IllegalArgumentException on a malformed line or address
     */
    static Lease parse(String text) {
        Lease l = new Lease();
        for (String line : text.split("\n")) {
            if (line.isEmpty()) {
                continue;
            }
            int eq = line.indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException("bad lease line: " + line);
            }
            String k = line.substring(0, eq);
            String v = line.substring(eq + 1);
            switch (k) {
                case "address": l.address = ip(v); break;
                case "prefix": l.prefixLength = Integer.parseInt(v); break;
                case "gateway": l.gateway = ip(v); break;
                case "route": l.routes.add(route(v)); break;
                case "dns": l.dns.add(ip(v)); break;
                case "domain": l.domain = v; break;
                case "search": l.search.add(v); break;
                case "mtu": l.mtu = Integer.parseInt(v); break;
                case "broadcast": l.broadcast = ip(v); break;
                case "lease": l.leaseTimeSeconds = Long.parseLong(v); break;
                case "t1": l.renewSeconds = Long.parseLong(v); break;
                case "t2": l.rebindSeconds = Long.parseLong(v); break;
                case "server": l.server = ip(v); break;
                default: break; // newer native side: ignore what we do not know
            }
        }
        if (l.address == null) {
            throw new IllegalArgumentException("lease without address");
        }
        return l;
    }

    static Route route(String v) {
        // "dest/prefix" or "dest/prefix via gw"
        String[] parts = v.split(" via ");
        int slash = parts[0].indexOf('/');
        if (slash < 0) {
            throw new IllegalArgumentException("bad route: " + v);
        }
        InetAddress dest = ip(parts[0].substring(0, slash));
        int prefix = Integer.parseInt(parts[0].substring(slash + 1));
        InetAddress gw = parts.length > 1 ? ip(parts[1]) : null;
        return new Route(dest, prefix, gw);
    }

    /** Parses an IP literal without any name lookup. */
    static InetAddress ip(String s) {
        try {
            if (s.indexOf(':') >= 0) {
                return InetAddress.getByName(s); // a literal: no lookup
            }
            String[] p = s.split("\\.");
            if (p.length != 4) {
                throw new IllegalArgumentException("bad IPv4 address: " + s);
            }
            byte[] b = new byte[4];
            for (int i = 0; i < 4; i++) {
                int n = Integer.parseInt(p[i]);
                if (n < 0 || n > 255) {
                    throw new IllegalArgumentException("bad IPv4 address: " + s);
                }
                b[i] = (byte) n;
            }
            return InetAddress.getByAddress(b);
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("bad address: " + s, e);
        }
    }
}
