package io.tapemu.example;

// The README's Java example, compiled by run-java-tests.sh against the stand-ins in
// javatest/android/; the README shows the lines between the markers verbatim (checked there).
// README:begin
import android.net.VpnService;
import android.os.ParcelFileDescriptor;
import android.util.Log;
import io.tapemu.Lease;
import io.tapemu.Route;
import io.tapemu.TapConfig;
import io.tapemu.TapEmulator;
import io.tapemu.TapListener;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.ByteBuffer;

public class ExampleVpnService extends VpnService {
    private volatile TapEmulator tap; // set before start(), so before any listener call

    void connect() {
        TapConfig config = TapConfig.builder()
                .hostname("phone")                          // DHCP by default; .staticAddress(...) too
                .link("vxlan://198.51.100.1:4789?vni=42")   // or omit: callback mode, your own protocol
                .build();
        tap = new TapEmulator(config, new TapListener() {
            @Override public boolean protect(int fd) { return ExampleVpnService.this.protect(fd); }
            @Override public void onLeaseAcquired(Lease lease) { attach(lease); }
            @Override public void onLeaseChanged(Lease oldLease, Lease lease) { attach(lease); }
            @Override public void onFrames(ByteBuffer batch) { /* callback mode: send the batch to the server */ }
            @Override public void onStopped(String error) { if (error != null) Log.w("vpn", "stopped: " + error); }
        });
        tap.start(); // returns at once; a link that cannot be set up comes as onStopped(error)
        // callback mode: tap.sendFrames(batchFromServer) says how many it took;   stats: tap.stats();
        // at the end: tap.close();
    }

    /** On the emulator's thread: a new interface, whose fd replaces (and closes) the old one. */
    private void attach(Lease lease) {
        Builder builder = new Builder().addAddress(lease.address(), lease.prefixLength()).setMtu(lease.mtu());
        for (Route route : lease.routes()) {
            builder.addRoute(route.destination(), route.prefixLength());
        }
        for (InetAddress dns : lease.dns()) {
            builder.addDnsServer(dns);
        }
        ParcelFileDescriptor pfd = builder.establish();
        if (pfd == null) { // the user revoked the VPN
            tap.close();
            stopSelf();
            return;
        }
        try {
            tap.attachTun(pfd.detachFd()); // the emulator owns the fd now, even when this throws
        } catch (IOException e) {
            Log.w("vpn", "TUN not attached", e);
        }
    }
}
// README:end
