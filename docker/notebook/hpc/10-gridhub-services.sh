# start.sh hook (sourced, as root): nslcd and munged, as gridhub-services starts them.
gridhub-services true
