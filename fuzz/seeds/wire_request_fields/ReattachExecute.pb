
$00112233-4455-6677-8899-aabbccddeeff<
alicealiceº>+
%type.googleapis.com/example.Extension$8f0ba5c1-3c1e-4a53-9b1e-3a2b0f6c7d11*r7