package android.net;

import android.os.ParcelFileDescriptor;
import java.net.InetAddress;

/**
 * Test stand-in for Android's {@code VpnService}: just the members the README's example
 * uses, with the platform's signatures, so the example compiles on the host JVM. Never run.
 */
public class VpnService {
    /** {@code VpnService.protect(int)}. */
    public boolean protect(int socket) {
        throw new UnsupportedOperationException("stand-in");
    }

    /** {@code Service.stopSelf()}. */
    public final void stopSelf() {
        throw new UnsupportedOperationException("stand-in");
    }

    /** Stand-in for {@code VpnService.Builder} (an inner class there too). */
    public class Builder {
        /** {@code Builder.setSession(String)}. */
        public Builder setSession(String session) {
            return this;
        }

        /** {@code Builder.setMtu(int)}. */
        public Builder setMtu(int mtu) {
            return this;
        }

        /** {@code Builder.addAddress(InetAddress, int)}. */
        public Builder addAddress(InetAddress address, int prefixLength) {
            return this;
        }

        /** {@code Builder.addRoute(InetAddress, int)}. */
        public Builder addRoute(InetAddress address, int prefixLength) {
            return this;
        }

        /** {@code Builder.addDnsServer(InetAddress)}. */
        public Builder addDnsServer(InetAddress address) {
            return this;
        }

        /** {@code Builder.addSearchDomain(String)}. */
        public Builder addSearchDomain(String domain) {
            return this;
        }

        /** {@code Builder.establish()}: null when the app is not (or no longer) the VPN. */
        public ParcelFileDescriptor establish() {
            throw new UnsupportedOperationException("stand-in");
        }
    }
}
