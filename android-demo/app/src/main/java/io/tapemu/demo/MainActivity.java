package io.tapemu.demo;

import android.app.Activity;
import android.content.Intent;
import android.net.VpnService;
import android.os.Bundle;
import android.widget.Button;
import android.widget.EditText;
import android.widget.LinearLayout;
import android.widget.TextView;

/** One screen: the server URL, a connect/disconnect button, the state and the lease. */
public final class MainActivity extends Activity {
    private static final int REQUEST_VPN = 1;

    private EditText url;
    private TextView status;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        int pad = (int) (16 * getResources().getDisplayMetrics().density);
        LinearLayout root = new LinearLayout(this);
        root.setOrientation(LinearLayout.VERTICAL);
        root.setPadding(pad, pad, pad, pad);
        url = new EditText(this);
        url.setSingleLine(true);
        url.setText(getSharedPreferences(TapVpnService.PREFS, MODE_PRIVATE)
                .getString(TapVpnService.EXTRA_URL, TapVpnService.DEFAULT_URL));
        Button connect = new Button(this);
        connect.setText("Connect");
        Button disconnect = new Button(this);
        disconnect.setText("Disconnect");
        status = new TextView(this);
        status.setText("IDLE");
        root.addView(url);
        root.addView(connect);
        root.addView(disconnect);
        root.addView(status);
        setContentView(root);

        connect.setOnClickListener(v -> {
            Intent consent = VpnService.prepare(this);
            if (consent != null) {
                startActivityForResult(consent, REQUEST_VPN);
            } else {
                onActivityResult(REQUEST_VPN, RESULT_OK, null);
            }
        });
        disconnect.setOnClickListener(v ->
                startService(new Intent(this, TapVpnService.class).setAction(TapVpnService.ACTION_STOP)));
    }

    @Override
    protected void onResume() {
        super.onResume();
        TapVpnService.observer = (state, plan, detail) -> runOnUiThread(() -> status.setText(
                state + (detail == null ? "" : "\n" + detail) + (plan == null ? "" : "\n\n" + plan)));
    }

    @Override
    protected void onPause() {
        TapVpnService.observer = null;
        super.onPause();
    }

    @Override
    protected void onActivityResult(int requestCode, int resultCode, Intent data) {
        if (requestCode == REQUEST_VPN && resultCode == RESULT_OK) {
            startService(new Intent(this, TapVpnService.class)
                    .setAction(TapVpnService.ACTION_START)
                    .putExtra(TapVpnService.EXTRA_URL, url.getText().toString().trim()));
        }
    }
}
