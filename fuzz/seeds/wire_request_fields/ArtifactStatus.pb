
$00112233-4455-6677-8899-aabbccddeeff<
alicealiceº>+
%type.googleapis.com/example.Extension"
jars/a.jar