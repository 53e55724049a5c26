"""Host side of deployment: device profiles, bundles, SSH install."""
